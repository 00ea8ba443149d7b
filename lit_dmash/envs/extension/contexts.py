"""Context spaces of the sign-pattern extension envs (`*_signs`), defined as YAML data.

These are our own extension of the benchmark, not the paper's tasks (those are
`lit_dmash/envs/tasks/*.yaml`, selected by `lit_dmash.envs.task_contexts`): a fresh context per
episode, drawn from ranges and per-actuator patterns. Each env's default space ships in the
package as `lit_dmash/envs/extension/<env>.yaml` (variants under `extension/variants/`); a user
YAML is passed as `context_file`.

A context is a float vector: one entry per actuator (+1.0 or -1.0, the actuator's sign), then,
in a space with `permutation: true`, one entry per actuator giving which policy output drives it
(a permutation of `0..num_actuators-1`, stored as floats), then one entry per continuous
parameter (friction, mass, ...). Simulated actuator `i` receives `sign[i] * action[perm[i]]`.
A split says which sign patterns, permutations and parameter ranges an episode may draw from:

```yaml
num_actuators: 2
params: [friction]
splits:
  train:
    signs: [[1, 1], [1, -1], [-1, 1]]   # sign patterns, drawn uniformly
    friction: [[0.5, 1.5]]               # a list of [low, high] ranges
    # perms: [[0, 1], [1, 0]]            # only (and then required) when `permutation: true`
```

Sign patterns, permutations and parameters are drawn independently of each other.

A value is drawn from a list of ranges by picking a range with probability proportional to its
length (so the union is sampled uniformly) and then uniformly inside it; `[v, v]` is a point.
Every split name is free: an env may define more than `train`, `eval_in` and `eval_out`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml

from lit_dmash.errors import ConfigError, check_int

Range = tuple[float, float]


@dataclass(frozen=True)
class Split:
    """The contexts one split may draw: sign patterns and ranges per continuous parameter."""

    name: str
    sign_patterns: tuple[tuple[float, ...], ...]
    param_ranges: tuple[tuple[Range, ...], ...]  # one tuple of ranges per parameter
    permutations: tuple[tuple[int, ...], ...] | None = None  # None: actuators keep their order

    def contains(self, context: torch.Tensor) -> torch.Tensor:
        """Boolean mask `[N]`: whether each context `[N, D]` could have been drawn from this split."""
        num_act = len(self.sign_patterns[0])
        patterns = torch.tensor(self.sign_patterns, dtype=context.dtype, device=context.device)
        ok = (context[:, None, :num_act] == patterns[None]).all(-1).any(-1)
        first_param = num_act
        if self.permutations is not None:
            perms = torch.tensor(self.permutations, dtype=context.dtype, device=context.device)
            ok &= (context[:, None, num_act : 2 * num_act] == perms[None]).all(-1).any(-1)
            first_param = 2 * num_act
        for i, ranges in enumerate(self.param_ranges):
            value = context[:, first_param + i]
            in_any = torch.zeros_like(ok)
            for low, high in ranges:
                in_any |= (value >= low - 1e-6) & (value <= high + 1e-6)
            ok &= in_any
        return ok


@dataclass(frozen=True)
class ContextSpace:
    """An environment's context layout and its named splits."""

    env: str
    num_actuators: int
    param_names: tuple[str, ...]
    splits: dict[str, Split]
    permutation: bool = False

    @property
    def dim(self) -> int:
        """Length of the context vector: signs, the permutation (if any), then the parameters."""
        return self.num_actuators * (2 if self.permutation else 1) + len(self.param_names)

    @property
    def param_offset(self) -> int:
        """Index of the first continuous parameter in the context vector."""
        return self.num_actuators * (2 if self.permutation else 1)

    @property
    def split_names(self) -> list[str]:
        return list(self.splits)

    def split(self, name: str) -> Split:
        """The split called `name`; a `ConfigError` listing the env's splits otherwise."""
        if name not in self.splits:
            raise ConfigError("split", name, f"env {self.env!r} defines splits {self.split_names}")
        return self.splits[name]

    @classmethod
    def from_dict(cls, env: str, data: dict[str, Any]) -> ContextSpace:
        """Validate a parsed YAML context space; every error names the offending field."""
        if not isinstance(data, dict):
            raise ConfigError(f"{env}.contexts", data, "expected a mapping with num_actuators, params, splits")
        num_act = data.get("num_actuators")
        check_int(f"{env}.num_actuators", num_act)
        params = data.get("params", [])
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            raise ConfigError(f"{env}.params", params, "expected a list of parameter names")
        permutation = data.get("permutation", False)
        if not isinstance(permutation, bool):
            raise ConfigError(f"{env}.permutation", permutation, "expected true or false")
        unknown = set(data) - {"num_actuators", "params", "splits", "permutation"}
        if unknown:
            key = sorted(unknown)[0]
            raise ConfigError(f"{env}.{key}", data[key], "allowed keys: num_actuators, params, permutation, splits")
        raw_splits = data.get("splits")
        if not isinstance(raw_splits, dict) or not raw_splits:
            raise ConfigError(f"{env}.splits", raw_splits, "expected a non-empty mapping of split names")
        splits = {
            name: _parse_split(f"{env}.splits.{name}", name, spec, num_act, params, permutation)
            for name, spec in raw_splits.items()
        }
        return cls(env=env, num_actuators=num_act, param_names=tuple(params), splits=splits, permutation=permutation)


def _parse_split(field: str, name: str, spec: Any, num_act: int, params: list[str], permutation: bool) -> Split:
    keys = ["signs", *(["perms"] if permutation else []), *params]
    if not isinstance(spec, dict):
        raise ConfigError(field, spec, f"expected a mapping with keys {keys}")
    unknown = set(spec) - set(keys)
    if unknown:
        raise ConfigError(f"{field}.{sorted(unknown)[0]}", spec[sorted(unknown)[0]], f"allowed keys: {keys}")
    patterns = spec.get("signs")
    if not isinstance(patterns, list) or not patterns:
        raise ConfigError(f"{field}.signs", patterns, "expected a non-empty list of sign patterns")
    for pattern in patterns:
        if not isinstance(pattern, list) or len(pattern) != num_act or any(s not in (1, -1) for s in pattern):
            raise ConfigError(f"{field}.signs", pattern, f"expected a list of {num_act} entries, each +1 or -1")
    ranges = []
    for param in params:
        raw = spec.get(param)
        if not isinstance(raw, list) or not raw:
            raise ConfigError(f"{field}.{param}", raw, "expected a non-empty list of [low, high] ranges")
        parsed = []
        for rng in raw:
            ok = isinstance(rng, list) and len(rng) == 2 and all(_is_finite_number(v) for v in rng)
            if not ok or rng[0] > rng[1]:
                raise ConfigError(f"{field}.{param}", rng, "expected a range [low, high] with finite low <= high")
            parsed.append((float(rng[0]), float(rng[1])))
        ranges.append(tuple(parsed))
    return Split(
        name=name,
        sign_patterns=tuple(tuple(float(s) for s in p) for p in patterns),
        param_ranges=tuple(ranges),
        permutations=_parse_permutations(f"{field}.perms", spec.get("perms"), num_act) if permutation else None,
    )


def _parse_permutations(field: str, raw: Any, num_act: int) -> tuple[tuple[int, ...], ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(field, raw, "expected a non-empty list of permutations (permutation: true)")
    for perm in raw:
        if not isinstance(perm, list) or sorted(perm) != list(range(num_act)):
            raise ConfigError(field, perm, f"expected a permutation of 0..{num_act - 1}")
    return tuple(tuple(int(i) for i in perm) for perm in raw)


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def default_context_file(env: str) -> Path:
    """The packaged default context space of extension env `env`."""
    return Path(str(resources.files("lit_dmash.envs").joinpath("extension", f"{env}.yaml")))


def variant_file(name: str) -> Path:
    """A packaged variant context space, e.g. `variant_file("cheetah_permutation")`."""
    return Path(str(resources.files("lit_dmash.envs").joinpath("extension", "variants", f"{name}.yaml")))


def load_context_space(env: str, path: str | Path | None = None) -> ContextSpace:
    """Read and validate an env's context space: `path`, or its packaged YAML by default."""
    path = Path(path) if path is not None else default_context_file(env)
    if not path.is_file():
        raise ConfigError("context_file", str(path), "expected an existing YAML file")
    with path.open() as f:
        data = yaml.safe_load(f)
    return ContextSpace.from_dict(env, data)


class ContextSampler:
    """Draws contexts of one split, batched, from its own seeded generator (reproducible)."""

    def __init__(self, split: Split, seed: int, device: torch.device | str = "cpu") -> None:
        self.split = split
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self._patterns = torch.tensor(split.sign_patterns, dtype=torch.float32, device=self.device)
        self._perms = (
            torch.tensor(split.permutations, dtype=torch.float32, device=self.device)
            if split.permutations is not None
            else None
        )
        self._lows, self._highs, self._probs = [], [], []
        for ranges in split.param_ranges:
            lows = torch.tensor([r[0] for r in ranges], dtype=torch.float32, device=self.device)
            highs = torch.tensor([r[1] for r in ranges], dtype=torch.float32, device=self.device)
            widths = highs - lows
            # Ranges are picked in proportion to their width; all-point lists are picked uniformly.
            probs = widths / widths.sum() if widths.sum() > 0 else torch.full_like(widths, 1 / len(ranges))
            self._lows.append(lows)
            self._highs.append(highs)
            self._probs.append(probs)

    def sample(self, n: int) -> torch.Tensor:
        """`n` contexts, shape `[n, context_dim]` (signs, permutation if any, parameters)."""
        idx = torch.randint(len(self._patterns), (n,), generator=self.generator, device=self.device)
        columns = [self._patterns[idx]]
        if self._perms is not None:
            columns.append(
                self._perms[torch.randint(len(self._perms), (n,), generator=self.generator, device=self.device)]
            )
        for lows, highs, probs in zip(self._lows, self._highs, self._probs, strict=True):
            which = torch.multinomial(probs, n, replacement=True, generator=self.generator)
            u = torch.rand(n, generator=self.generator, device=self.device)
            columns.append((lows[which] + u * (highs[which] - lows[which]))[:, None])
        return torch.cat(columns, dim=-1)
