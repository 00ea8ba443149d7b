"""Our sign-pattern extension of the benchmark (not the paper's tasks).

`di_signs` (pure torch) and the MuJoCo `*_signs` domains (`aib.py`): per-actuator sign patterns,
permutations and continuous scales, a fresh context per episode, splits defined in YAML
(`extension/<name>.yaml`, or a user file as the `context_file` task option). `registration.py`
makes them reachable through `make_env`.
"""
