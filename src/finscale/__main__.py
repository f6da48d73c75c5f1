"""`python -m finscale`: the same as the `finscale` command."""

from finscale.cli import main

main()
