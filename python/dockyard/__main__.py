from dockyard.cli.entry import main

main()
