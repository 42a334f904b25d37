from cofre.cli.main import main

main()
