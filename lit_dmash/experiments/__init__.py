"""Running experiments: grid files and their jobs (`grid`), how jobs run (`launchers`) and the
`python -m lit_dmash grid` command line (`grid_cli`). Torch-free: submitit's job processes import it."""
