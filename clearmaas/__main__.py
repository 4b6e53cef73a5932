from clearmaas.cli import main

main()
