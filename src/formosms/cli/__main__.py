from formosms.cli import main

main()
