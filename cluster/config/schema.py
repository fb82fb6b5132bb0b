"""Network and workload configuration in YAML, validated by pydantic; one-line errors.

Input limits (docs/operations.md, "Input limits"): a config file is UTF-8, at
most ``MAX_CONFIG_BYTES``, names each mapping key once, nests at most
``MAX_YAML_DEPTH`` deep and expands (aliases included) to at most
``MAX_YAML_VALUES`` values; every count and size has an upper bound (the
``MAX_*`` constants here and in :mod:`cluster.config.workload`, task sizes in
:data:`workers.MAX_SIZE`), so no valid file makes a run allocate without limit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from yaml.constructor import ConstructorError

import workers
from cluster.config.workload import ConfigError, Float, Int, WorkloadSpec, first_error
from protocol import Params
from protocol.commission import check_takes
from protocol.errors import InvalidParams, ProtocolError
from protocol.units import PPM, Address, Amount, tokens

CLIENT: Address = "client"
"""The account that pays task fees (funded with ``network.client_balance``)."""


MAX_OPERATORS = 10_000
MAX_COPROCESSORS = 10_000
MAX_DELEGATORS = 1_000_000
MAX_ACCOUNTS = 100_000
MAX_NAME = 256
"""The longest account name (operators, coprocessors, accounts)."""
MAX_SEED = 2**63 - 1
MAX_CONFIG_BYTES = 16 * 2**20
MAX_YAML_DEPTH = 64
MAX_YAML_VALUES = 4_000_000

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]


def _to_base_units(value: Any) -> Amount:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a whole number of tokens or a decimal string")
    amount = tokens(value)
    if amount < 0:
        raise ValueError("must not be negative")
    return amount


TokenAmount = Annotated[Any, Field(description="tokens, e.g. 100 or '0.5'")]


class OperatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)
    name: Name
    stake: TokenAmount
    reward_cut: Annotated[Int, Field(ge=0, le=PPM)] = 100_000
    fee_share: Annotated[Int, Field(ge=0, le=PPM)] = 900_000
    miss_rate: Annotated[Float, Field(ge=0.0, le=1.0)] = 0.0
    # Experiments: how often its own runs are wrong (caught only when an audit samples one).
    fault_rate: Annotated[Float, Field(ge=0.0, le=1.0)] = 0.0
    # The largest task difficulty it runs itself (difficulty: size / self_execute_max_size).
    resources: Annotated[Float, Field(ge=0.0, le=1e12, allow_inf_nan=False)] = 1.0

    _stake = field_validator("stake")(lambda v: _to_base_units(v))


class DelegatorsConfig(BaseModel):
    """``count`` delegators (at most 1,000,000), each bonding a stake in [stake_min, stake_max]."""

    model_config = ConfigDict(extra="forbid", validate_default=True)
    count: Annotated[
        Int, Field(ge=0, le=MAX_DELEGATORS, description="delegators, 0 to 1,000,000")
    ] = 0
    stake_min: TokenAmount = 1
    stake_max: TokenAmount = 100

    _bounds = field_validator("stake_min", "stake_max")(lambda v: _to_base_units(v))

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.stake_min > self.stake_max:
            raise ValueError(
                f"stake_min ({self.stake_min} base units) must not exceed stake_max"
                f" ({self.stake_max} base units)"
            )
        return self


class CoprocessorConfig(BaseModel):
    """A coprocessor: collateral, concurrent capacity, pricing and (for experiments) faults."""

    model_config = ConfigDict(extra="forbid", validate_default=True)
    name: Name
    collateral: TokenAmount
    capacity: Annotated[
        Int, Field(ge=1, le=1_000_000, description="concurrent tasks, <= 10**6")
    ] = 4
    cost_ppm: Annotated[Int, Field(ge=0, le=PPM)] = 200_000
    margin_ppm: Annotated[Int, Field(ge=0, le=PPM)] = 0
    fault_rate: Annotated[Float, Field(ge=0.0, le=1.0)] = 0.0
    late_s: Annotated[
        Float, Field(ge=0.0, le=3600.0, allow_inf_nan=False, description="seconds, <= 3600")
    ] = 0.0
    host: Annotated[Int, Field(ge=0)] | None = None

    _money = field_validator("collateral")(lambda v: _to_base_units(v))


class HostsConfig(BaseModel):
    """How many actors host the participants, and where they are placed."""

    model_config = ConfigDict(extra="forbid", validate_default=True)
    operator_hosts: Annotated[Int, Field(ge=1, le=64)] = 2
    coprocessor_hosts: Annotated[Int, Field(ge=1, le=64)] = 1
    gpus_per_coprocessor_host: Annotated[Float, Field(ge=0.0, le=8.0)] = 0.0
    # CPUs reserved per coprocessor host; Ray gives its BLAS as many threads (0: one, unreserved).
    cpus_per_coprocessor_host: Annotated[Int, Field(ge=0, le=1024)] = 0
    coprocessor_resource: str | None = None
    coordinator_resource: str | None = None


class ClockConfig(BaseModel):
    """A round lasts ``every_s`` seconds or ``every_tasks`` settled tasks (default 100 tasks)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)
    every_s: (
        Annotated[
            Float, Field(ge=0.01, le=86_400.0, allow_inf_nan=False, description="0.01 s to a day")
        ]
        | None
    ) = None
    every_tasks: Annotated[Int, Field(ge=1, le=10_000_000, description="1 to 10**7")] | None = None

    @model_validator(mode="before")
    @classmethod
    def _default(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("every_s") is None and "every_tasks" not in data:
            return {**data, "every_tasks": 100}
        return data

    @model_validator(mode="after")
    def _one(self) -> Self:
        if self.every_s is not None and self.every_tasks is not None:
            raise ValueError("give one of every_s and every_tasks, not both")
        if self.every_s is None and self.every_tasks is None:
            raise ValueError("give one of every_s and every_tasks")
        return self


class MarketConfig(BaseModel):
    """How the cluster moves work: batches, in-flight bound, self-execution, timeouts, clock."""

    model_config = ConfigDict(extra="forbid", validate_default=True)
    batch_size: Annotated[Int, Field(ge=1, le=10_000)] = 50
    max_inflight: Annotated[Int, Field(ge=1, le=1_000)] = 4
    # Paced runs: a batch is the tasks arriving within this many seconds of its first.
    batch_window_s: Annotated[Float, Field(gt=0.0, le=3600.0, allow_inf_nan=False)] = 0.05
    self_execute_max_size: dict[str, Annotated[Int, Field(ge=0)]] = Field(default_factory=dict)
    execute_timeout_s: Annotated[Float, Field(gt=0.0, le=86_400.0, allow_inf_nan=False)] = 10.0
    host_cooldown_s: Annotated[Float, Field(ge=0.0, le=86_400.0, allow_inf_nan=False)] = 2.0
    clock: ClockConfig = ClockConfig()

    @field_validator("self_execute_max_size")
    @classmethod
    def _kinds(cls, sizes: dict[str, int]) -> dict[str, int]:
        for kind in sizes:
            if kind not in workers.KINDS:
                raise ValueError(
                    f"unknown task kind {kind!r}; choose from {', '.join(workers.KINDS)}"
                )
        return sizes


class NetworkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)
    operators: list[OperatorConfig] = Field(
        min_length=1, max_length=MAX_OPERATORS, description="1 to 10,000 operators"
    )
    delegators: DelegatorsConfig = DelegatorsConfig()
    coprocessors: list[CoprocessorConfig] = Field(
        default_factory=list, max_length=MAX_COPROCESSORS, description="up to 10,000"
    )
    accounts: dict[Name, TokenAmount] = Field(
        default_factory=dict, max_length=MAX_ACCOUNTS, description="up to 100,000 funded accounts"
    )
    client_balance: TokenAmount = 1_000_000
    params: dict[str, Any] = Field(default_factory=dict)
    hosts: HostsConfig = HostsConfig()
    market: MarketConfig = MarketConfig()

    _client = field_validator("client_balance")(lambda v: _to_base_units(v))

    @field_validator("accounts")
    @classmethod
    def _accounts(cls, accounts: dict[str, Any]) -> dict[str, Amount]:
        return {name: _to_base_units(v) for name, v in accounts.items()}

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [op.name for op in self.operators] + [c.name for c in self.coprocessors]
        names += list(self.accounts)
        seen: set[str] = set()
        for name in names:
            if name in seen or name == CLIENT or name.startswith("delegator-"):
                raise ValueError(f"account name {name!r} is used twice or reserved")
            seen.add(name)
        for c in self.coprocessors:
            if c.host is not None and c.host >= self.hosts.coprocessor_hosts:
                raise ValueError(
                    f"coprocessor {c.name!r}: host {c.host} >= hosts.coprocessor_hosts"
                )
        return self

    @model_validator(mode="after")
    def _takes(self) -> Self:
        # Registration obeys the take bounds (protocol.commission), so say it here, by name.
        try:
            params = self.protocol_params()
        except ProtocolError:
            return self  # the params' own error is reported for the params field
        for op in self.operators:
            try:
                check_takes(params, op.reward_cut, op.fee_share)
            except ProtocolError as exc:
                raise ValueError(f"operator {op.name!r}: {exc} (params.max_take)") from None
        return self

    def protocol_params(self) -> Params:
        return Params.build(**self.params)


class RunConfig(BaseModel):
    """A network and the workload it runs (``workload`` may come from its own file)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)
    seed: Annotated[Int, Field(ge=0, le=MAX_SEED, description="0 to 2**63 - 1")] = 0
    network: NetworkConfig
    workload: WorkloadSpec | None = None


def load_config(path: str | Path, workload: str | Path | None = None) -> RunConfig:
    """Load and validate a run configuration (and an optional separate workload file)."""
    data = read_yaml(path)
    source = str(path)
    if workload is not None:
        data["workload"] = read_yaml(workload)
        source = f"{path} + {workload}"
    try:
        config = RunConfig.model_validate(data)
        config.network.protocol_params()
    except ValidationError as exc:
        raise first_error(exc, source) from None
    except InvalidParams as exc:
        raise ConfigError(f"{path}: network.{exc}") from None
    return config


def load_workload(path: str | Path) -> WorkloadSpec:
    """Load and validate a workload file on its own (``stakeray submit``)."""
    try:
        return WorkloadSpec.model_validate(read_yaml(path))
    except ValidationError as exc:
        raise first_error(exc, str(path)) from None


_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"


class StrictLoader(_YAML_LOADER):  # type: ignore[valid-type,misc]
    """YAML's safe loader that refuses a key given twice in one mapping (else the last wins).

    Keys brought in by a merge (``<<: *base``) may be overridden, as YAML
    intends; a scalar the constructor cannot build (a 5,000-digit integer,
    month 13) is a YAML error at its line, not a stray ``ValueError``.
    """

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        checked: set[int] = self.__dict__.setdefault("_checked", set())
        if id(node) not in checked:  # before the first flatten: only the mapping's own keys
            checked.add(id(node))
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    raise ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        super().flatten_mapping(node)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:
            raise ConstructorError(None, None, str(exc), node.start_mark) from None


def _measure(value: Any, depth: int, memo: dict[int, int], active: set[int]) -> int:
    """Return how many values ``value`` expands to (aliases counted each time they appear)."""
    if not isinstance(value, dict | list):
        return 1
    key = id(value)
    if key in memo:
        return memo[key]
    if key in active:
        raise ValueError("a value contains itself (a recursive alias)")
    if depth > MAX_YAML_DEPTH:
        raise ValueError(f"nested deeper than {MAX_YAML_DEPTH} levels")
    active.add(key)
    children = list(value.values()) if isinstance(value, dict) else value
    total = 1 + len(value) if isinstance(value, dict) else 1
    for child in children:
        total += _measure(child, depth + 1, memo, active)
        if total > MAX_YAML_VALUES:
            raise ValueError(f"expands to more than {MAX_YAML_VALUES:,} values (aliases counted)")
    active.discard(key)
    memo[key] = total
    return total


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, or raise a one-line :class:`ConfigError` naming the file.

    The file must be UTF-8, at most ``MAX_CONFIG_BYTES``, with no key twice in
    a mapping and a bounded size once aliases are expanded.
    """
    try:
        with Path(path).open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 2**20} MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: not UTF-8 text (byte {exc.start})") from None
    try:
        data = yaml.load(text, Loader=StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}:" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        detail = f": {' '.join(str(problem).split())}" if problem else ""
        raise ConfigError(f"{path}:{line} invalid YAML{detail}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    try:
        _measure(data, 0, {}, set())
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return data
