"""Network and workload configuration in YAML, validated by pydantic; one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

import workers
from cluster.config.workload import WorkloadSpec
from protocol import Params
from protocol.errors import InvalidParams
from protocol.units import PPM, Address, Amount, tokens

CLIENT: Address = "client"
"""The account that pays task fees (funded with ``network.client_balance``)."""


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or invalid (one line, naming the field)."""


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
    name: str = Field(min_length=1)
    stake: TokenAmount
    reward_cut: Annotated[int, Field(ge=0, le=PPM)] = 100_000
    fee_share: Annotated[int, Field(ge=0, le=PPM)] = 900_000
    miss_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0

    _stake = field_validator("stake")(lambda v: _to_base_units(v))


class DelegatorsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)
    count: Annotated[int, Field(ge=0)] = 0
    stake_min: TokenAmount = 1
    stake_max: TokenAmount = 100

    _bounds = field_validator("stake_min", "stake_max")(lambda v: _to_base_units(v))


class CoprocessorConfig(BaseModel):
    """A coprocessor: collateral, concurrent capacity, pricing and (for experiments) faults."""

    model_config = ConfigDict(extra="forbid", validate_default=True)
    name: str = Field(min_length=1)
    collateral: TokenAmount
    capacity: Annotated[int, Field(ge=1)] = 4
    cost_ppm: Annotated[int, Field(ge=0, le=PPM)] = 200_000
    margin: TokenAmount = 0
    fault_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    late_s: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = 0.0
    host: Annotated[int, Field(ge=0)] | None = None

    _money = field_validator("collateral", "margin")(lambda v: _to_base_units(v))


class HostsConfig(BaseModel):
    """How many actors host the participants, and where they are placed."""

    model_config = ConfigDict(extra="forbid", validate_default=True)
    operator_hosts: Annotated[int, Field(ge=1, le=64)] = 2
    coprocessor_hosts: Annotated[int, Field(ge=1, le=64)] = 1
    gpus_per_coprocessor_host: Annotated[float, Field(ge=0.0, le=8.0)] = 0.0
    # CPUs reserved per coprocessor host; Ray gives its BLAS as many threads (0: one, unreserved).
    cpus_per_coprocessor_host: Annotated[int, Field(ge=0, le=1024)] = 0
    coprocessor_resource: str | None = None
    coordinator_resource: str | None = None


class ClockConfig(BaseModel):
    """A round lasts ``every_s`` seconds or ``every_tasks`` settled tasks (default 100 tasks)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)
    every_s: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None
    every_tasks: Annotated[int, Field(ge=1)] | None = None

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
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 50
    max_inflight: Annotated[int, Field(ge=1, le=1_000)] = 4
    self_execute_max_size: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    execute_timeout_s: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = 10.0
    host_cooldown_s: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = 2.0
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
    operators: list[OperatorConfig] = Field(min_length=1)
    delegators: DelegatorsConfig = DelegatorsConfig()
    coprocessors: list[CoprocessorConfig] = Field(default_factory=list)
    accounts: dict[str, TokenAmount] = Field(default_factory=dict)
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

    def protocol_params(self) -> Params:
        return Params.build(**self.params)


class RunConfig(BaseModel):
    """A network and the workload it runs (``workload`` may come from its own file)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)
    seed: int = 0
    network: NetworkConfig
    workload: WorkloadSpec | None = None


def first_error(exc: ValidationError, source: str) -> ConfigError:
    """Return the first validation error as one line: ``source: field.path: message``."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    return ConfigError(f"{source}: {where}: {err['msg']}")


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


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, or raise a one-line :class:`ConfigError` naming the file."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{line} invalid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data
