"""``python -m roomscan``: the same as the ``roomscan`` command (e.g. under ``torchrun -m roomscan train``)."""

from roomscan.cli import main

if __name__ == "__main__":
    main()
