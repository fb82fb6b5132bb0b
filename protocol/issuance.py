"""The Minter: bonding-rate feedback on inflation, mintable per round (SPEC section 3)."""

from __future__ import annotations

from .params import Params
from .state import State
from .units import PPB, Amount


def get_total_supply(state: State) -> Amount:
    """Return genesis supply plus minted minus burned."""
    t = state.totals
    return t.genesis_supply + t.minted - t.burned


def compute_bonding_rate(total_active_stake: Amount, total_supply: Amount) -> int:
    """Return the bonding rate in PPB (0 when there is no supply)."""
    return total_active_stake * PPB // total_supply if total_supply > 0 else 0


def compute_next_inflation(inflation: int, bonding_rate: int, params: Params) -> int:
    """Move inflation one step towards the target bonding rate, never below 0."""
    if bonding_rate < params.target_bonding_rate:
        return inflation + params.inflation_change
    if bonding_rate > params.target_bonding_rate:
        return max(inflation - params.inflation_change, 0)
    return inflation


def update_minter(state: State, params: Params) -> None:
    """Adjust inflation from this round's active stake and reset mintable (SPEC 3)."""
    supply = get_total_supply(state)
    rate = compute_bonding_rate(state.total_active_stake, supply)
    state.minter.inflation = compute_next_inflation(state.minter.inflation, rate, params)
    state.minter.mintable = supply * state.minter.inflation // PPB
    state.minter.minted_in_round = 0
