"""`python -m fastaudit` runs the command line."""
from fastaudit.cli import main

main()
