"""Work commands of the ``vitq`` CLI: each module has ``add_arguments(parser)`` and ``run(args) -> int``."""
