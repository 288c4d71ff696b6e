"""python -m archspec"""

from .cli.main import main

main()
