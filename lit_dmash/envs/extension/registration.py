"""Register the extension envs with `make_env` (imported by `lit_dmash.envs`)."""

from functools import partial

from lit_dmash.envs.extension.aib import DOMAINS, make_mujoco_env
from lit_dmash.envs.extension.di_signs import DISignsEnv
from lit_dmash.envs.registry import register_extension_env

EXTENSION_ENVS = ("di_signs", *DOMAINS)

register_extension_env("di_signs", DISignsEnv, window=24)
for _name, _domain in DOMAINS.items():
    register_extension_env(_name, partial(make_mujoco_env, _domain))
