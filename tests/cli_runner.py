"""Run a program's ``main`` in the test process: what train.py and the tools do, with stdout restored.

``main`` tees stdout into ``<output-dir>/log.txt`` (dassl's Logger); these helpers close that tee
afterwards, so one test can run several programs one after the other.
"""
import sys


def run_main(main, argv):
    """``main([str(a) for a in argv])``, stdout restored afterwards."""
    from dassl.utils import Logger

    old_stdout = sys.stdout
    try:
        return main([str(a) for a in argv])
    finally:
        if isinstance(sys.stdout, Logger):
            sys.stdout.close()
        sys.stdout = old_stdout


def run_train(argv):
    """train.py's main in this process (logger, seeding, --eval-only: the whole CLI path)."""
    import train

    return run_main(lambda args: train.main(train.get_parser().parse_args(args)), argv)
