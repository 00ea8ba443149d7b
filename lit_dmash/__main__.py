"""`python -m lit_dmash fit|test|validate ...` (Lightning CLI), `grid -c FILE`, `aggregate DIR`,
`convert-checkpoint OLD NEW --trust`."""

import sys

from lit_dmash.console import quiet_known_noise

if __name__ == "__main__":
    quiet_known_noise()  # before the imports that warn (dm_control's glfw on a headless machine)
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "grid":
        from lit_dmash.experiments.grid_cli import main as grid_main

        sys.exit(grid_main(sys.argv[2:]))
    if command == "aggregate":
        from lit_dmash.analysis.aggregate import main as aggregate_main

        sys.exit(aggregate_main(sys.argv[2:]))
    if command == "convert-checkpoint":
        from lit_dmash.checkpointing import convert_main

        sys.exit(convert_main(sys.argv[2:]))
    from lit_dmash.cli import main

    main()
