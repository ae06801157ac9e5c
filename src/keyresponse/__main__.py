from keyresponse.cli import main

main()
