"""Run configuration in YAML, validated by pydantic; a bad file gets a one-line error."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from protocol import Params
from protocol.errors import InvalidParams
from protocol.units import PPM, Amount, tokens


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
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    stake: TokenAmount
    reward_cut: Annotated[int, Field(ge=0, le=PPM)] = 100_000
    fee_share: Annotated[int, Field(ge=0, le=PPM)] = 900_000
    miss_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0

    _stake = field_validator("stake")(lambda v: _to_base_units(v))


class DelegatorsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: Annotated[int, Field(ge=0)] = 0
    stake_min: TokenAmount = 1
    stake_max: TokenAmount = 100

    _bounds = field_validator("stake_min", "stake_max")(lambda v: _to_base_units(v))


class NetworkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operators: list[OperatorConfig] = Field(min_length=1)
    delegators: DelegatorsConfig = DelegatorsConfig()
    client_balance: TokenAmount = 1_000_000
    params: dict[str, Any] = Field(default_factory=dict)

    _client = field_validator("client_balance")(lambda v: _to_base_units(v))

    @field_validator("operators")
    @classmethod
    def _unique(cls, ops: list[OperatorConfig]) -> list[OperatorConfig]:
        names = [op.name for op in ops]
        if len(set(names)) != len(names):
            raise ValueError("operator names must be unique")
        return ops

    def protocol_params(self) -> Params:
        return Params.build(**self.params)


class WorkloadConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rounds: Annotated[int, Field(ge=1)] = 20
    fees_per_round: TokenAmount = 10
    payments_per_round: Annotated[int, Field(ge=0)] = 50

    _fees = field_validator("fees_per_round")(lambda v: _to_base_units(v))


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    network: NetworkConfig
    workload: WorkloadConfig = WorkloadConfig()


def _first_error(exc: ValidationError, source: str) -> ConfigError:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    return ConfigError(f"{source}: {where}: {err['msg']}")


def load_config(path: str | Path, workload: str | Path | None = None) -> RunConfig:
    """Load and validate a run configuration (and an optional separate workload file)."""
    data = _read_yaml(path)
    if workload is not None:
        data["workload"] = _read_yaml(workload)
    try:
        config = RunConfig.model_validate(data)
        config.network.protocol_params()
    except ValidationError as exc:
        raise _first_error(exc, str(path)) from None
    except InvalidParams as exc:
        raise ConfigError(f"{path}: network.{exc}") from None
    return config


def _read_yaml(path: str | Path) -> dict[str, Any]:
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
