"""``python -m centerpoint_suite ...`` runs the ``centerpoint`` command (also under torchrun)."""

from centerpoint_suite.cli.main import main

if __name__ == "__main__":
    main()
