"""Protocol parameters (pydantic, validated) with the SPEC defaults and presets."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import InvalidParams
from .loadcurve import LoadCurve
from .reputation import GasParams
from .units import PPB, PPM

PpmField = Annotated[int, Field(ge=0, le=PPM)]
PpbField = Annotated[int, Field(ge=0, le=PPB)]


class Params(BaseModel):
    """Every tunable rule of the protocol; defaults are SPEC section 3/4/7/10's."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    # Issuance (SPEC 3), PPB per round.
    inflation: PpbField = 218_500
    inflation_change: PpbField = 500
    target_bonding_rate: PpbField = 500_000_000
    # Bonding and the active set (SPEC 2, 5).
    unbonding_period: Annotated[int, Field(ge=0)] = 7
    max_active_operators: Annotated[int, Field(ge=1)] = 100
    min_operator_bond: Annotated[int, Field(ge=0)] = 0
    # Rewards and commission (SPEC 4), PPM.
    treasury_cut: PpmField = 0
    min_take: PpmField = 0
    max_take: PpmField = 180_000
    take_cooldown_rounds: Annotated[int, Field(ge=0)] = 30
    # Slashing (SPEC 7).
    finder_fee: PpmField = 50_000
    slash_delegators: bool = False
    # The market (SPEC 6-9).
    collateral_ratio: PpmField = 200_000
    auction_step: PpmField = 10_000
    reserve_ratio: PpmField = 100_000
    max_attempts: Annotated[int, Field(ge=1)] = 3
    # A task not finished `deadline_rounds` rounds after the round it was escrowed in is
    # expired (refunded); an escrow may give its own.
    deadline_rounds: Annotated[int, Field(ge=1, le=1_000_000)] = 3
    slash_fraction: PpmField = 100_000
    redistribution: PpmField = 500_000
    # A liveness fault (no result in time: a crash, a timeout, a missed deadline) is not
    # fraud: unpaid, a reputation failure, and at most this penalty (of the collateral
    # the task locked, or of an operator's own bond).
    liveness_penalty: PpmField = 0
    audit_rate: PpmField = 10_000
    coprocessor_issuance_share: PpmField = 0
    min_reputation: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    w_stake: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    w_random: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    gas: GasParams = GasParams()
    load_curve: LoadCurve = LoadCurve()
    # Governance (SPEC 10).
    voting_period: Annotated[int, Field(ge=1)] = 10
    quorum: PpmField = 333_300
    quota: PpmField = 500_000

    @model_validator(mode="after")
    def _check_takes(self) -> Self:
        if self.min_take > self.max_take:
            raise ValueError("min_take must not exceed max_take")
        if abs(self.w_stake + self.w_random - 1.0) > 1e-9:
            raise ValueError("w_stake + w_random must be 1")
        return self

    @classmethod
    def livepeer(cls, **overrides: Any) -> Params:
        """Livepeer mainnet (Arbitrum) values: no take bounds or cooldown, 10 % treasury cut."""
        base: dict[str, Any] = {
            "min_take": 0,
            "max_take": PPM,
            "take_cooldown_rounds": 0,
            "treasury_cut": 100_000,
            "finder_fee": 0,
        }
        return cls.build(**{**base, **overrides})

    @classmethod
    def build(cls, **values: Any) -> Params:
        """Validate ``values``; raise ``InvalidParams`` naming the first bad field."""
        try:
            return cls(**values)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "params"
            raise InvalidParams(f"params.{where}: {err['msg']}") from None

    def replace(self, **changes: Any) -> Params:
        """Return a validated copy with ``changes`` applied."""
        return Params.build(**{**self.model_dump(), **changes})


PRESETS: dict[str, Params] = {"default": Params(), "livepeer": Params.livepeer()}
