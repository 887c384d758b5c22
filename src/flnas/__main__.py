from flnas.cli.main import main

main()
