from splitinfer.cli.app import main

main()
