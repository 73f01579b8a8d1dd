from tuneq.cli import main

main()
