"""Regression tests: short reproductions of violations the property tests found.

Each test states the correct behaviour (SPEC 4, 5, 7, 11); all of them failed
before the fixes (pool epochs and rebases, a lone operator owning its pool's
dust, empty pools sweeping dust to the treasury, the commission account
belonging to the operator's address). Comments keep the values seen then.
"""

from __future__ import annotations

import pytest

from protocol import PPM, TOKEN, Params, Protocol, ProtocolError

# A claim loses at most a few base units to rounding per position and round
# (see tests/test_properties.py::dust_bound); 1000 units is generous here.
DUST = 1_000


def test_dust_left_in_a_pool_earns_rewards_nobody_can_claim() -> None:
    """SPEC 4 "every minted base unit is claimable by someone" fails.

    Rounding leaves a few base units in ``pool.delegated`` that no position
    can claim. They count as active stake, so they earn a pro-rata share of
    every later reward, and that share is unclaimable too; the orphaned
    amount compounds with the pool. It is harmless while the pool is large,
    but when the claimable stake is small next to the dust, most of a reward
    is orphaned. Here the operator keeps 1 base unit self-bonded next to 4
    units of dust, is the only active operator, and mints the whole round's
    reward (~663 tokens): it can claim ~133 and ~531 tokens go to nobody.
    Found by hypothesis as "stake dust 2414 outside [0, 2310]" after a 99.9993 %
    own-bond slash.
    """
    p = Protocol(Params(max_active_operators=2), {"o0": 10**24, "d0": 10**24, "d1": 10**24})
    p.bond("o0", "o0", 10**24)
    p.register_operator("o0", 0, 1_000_000)
    p.bond("d0", "o0", 10**24 // 3)
    p.bond("d1", "o0", 10**24 // 7)
    for _ in range(3):
        p.initialize_round()
        p.reward("o0")
        for who in ("d0", "d1", "o0"):
            p.claim_earnings(who)
    p.initialize_round()
    p.unbond("d0", p.pending_stake("d0"))
    p.unbond("d1", p.pending_stake("d1"))
    p.unbond("o0", p.pending_stake("o0") - 1)  # keep 1 base unit: still an operator
    p.initialize_round()
    assert p.active_set == {"o0": p.operator_stake("o0")}
    minted = p.reward("o0")
    assert minted > 600 * TOKEN
    p.check_invariants()
    stake_dust, _ = p.unclaimable()
    # Actual: stake_dust ~ 530.7 tokens (80 % of the reward); o0 can claim ~132.7.
    assert 0 <= stake_dust <= DUST, f"{stake_dust} base units are claimable by nobody"
    assert p.pending_stake("o0") >= minted - DUST


def test_dust_after_a_near_total_own_slash_stays_rounding_sized() -> None:
    """The shrunk hypothesis example: a deep own slash leaves 1 unit of dust in a tiny pool.

    ``slash_delegators=False``: the operator's own bond is cut by 99.9993 %,
    so its pool (the only active one) is ~0.09 token while 1 base unit of
    dust sits in it; each following reward grows the pool (x519, then x2,
    x1.5, ...) and the dust with it. Dust is stake, so it grows in proportion
    to its pool, as in Livepeer: it stays a rounding-sized fraction of the
    pool (here ~10^-16), and becomes the lone operator's once it exceeds a
    millionth of its position (``earnings.RESIDUAL_THRESHOLD``). The operator
    keeps Livepeer's exact numbers meanwhile.
    """
    p = Protocol(Params(max_active_operators=2, max_take=PPM), {"o0": 10**23 + 8, "payer": 10**23})
    p.bond("o0", "o0", 12_500 * TOKEN + 1)
    p.register_operator("o0", 0, 0)
    for _ in range(47):
        p.initialize_round()
    p.reward("o0")
    p.slash_operator("o0", 999_993)
    for _ in range(8):
        p.initialize_round()
        p.reward("o0")
        p.check_invariants()
    stake_dust, _ = p.unclaimable()
    pool = p.operator_stake("o0")
    assert 0 <= stake_dust <= 4 * 2 * (p.round + 1) + pool // 10**12, (stake_dust, pool)


@pytest.mark.parametrize("move_first", [False, True])
def test_resigned_operator_moving_before_its_checkpoint_orphans_its_commission(
    move_first: bool,
) -> None:
    """An operator that resigns and delegates elsewhere before ``reward`` loses its commission.

    ``o1`` (reward_cut 18 %) unbonds its whole self-bond in round 1: it has
    resigned but is still in round 1's active set. Being unregistered, it may
    now bond to ``o0``. If it does so BEFORE ``reward("o1")``, the checkpoint
    credits the commission (18 % of the reward, ~39.4 tokens) to
    ``pools["o1"].cumulative_rewards``, which only ``o1``'s own position in
    pool ``o1`` can claim, and it has none any more: the commission is
    orphaned forever. In the other order (reward, then bond) ``o1`` gets it.
    SPEC 4: round-n rewards belong to round-n stake "whatever the order".
    Found by hypothesis (long variant) with reward_cut = 1 ppm.
    """
    p = Protocol(Params(max_active_operators=2), {"o0": 10**24, "o1": 10**24})
    p.bond("o0", "o0", 100 * TOKEN)
    p.register_operator("o0", 0, 1_000_000)
    p.bond("o1", "o1", 100 * TOKEN)
    p.register_operator("o1", 180_000, 1_000_000)
    p.initialize_round()
    p.unbond("o1", 100 * TOKEN)  # resigns; still active this round
    if not move_first:
        p.reward("o1")
    p.bond("o1", "o0", 10 * TOKEN)
    if move_first:
        p.reward("o1")
    p.check_invariants()
    for _ in range(2):
        p.initialize_round()
    stake_dust, _ = p.unclaimable()
    # Actual with move_first: 39.42 tokens unclaimable; o1's stake 189.58 instead of 229.
    assert 0 <= stake_dust <= DUST, stake_dust
    assert p.pending_stake("o1") >= 229 * TOKEN - DUST


def test_full_pool_slash_leaves_a_zero_factor_that_breaks_later_bonds() -> None:
    """A 100 % delegator-wide slash sets the pool's CRF to 0; later positions divide by it.

    With ``slash_delegators=True``, ``slash_operator(op, 1_000_000)`` makes
    ``crf_end = 0`` at the end of the round. The pool stays registered, and a
    later ``bond`` to it is accepted but starts the position at factor 0:
    from the next round on, ``pending_stake``, ``claim_earnings``, ``unbond``
    and ``unclaimable`` raise ``ZeroDivisionError`` (not a ``ProtocolError``),
    so the bonded tokens can never leave. Expected: either the bond is refused
    with a ProtocolError (changing nothing) or the position is valued normally.
    """
    p = Protocol(Params(slash_delegators=True), {"o": 10**24, "d": 10**24})
    p.bond("o", "o", 10**23)
    p.register_operator("o")
    p.initialize_round()
    p.slash_operator("o", 1_000_000)
    p.initialize_round()
    try:
        p.bond("d", "o", 10**21)
    except ProtocolError:
        return  # refusing to bond into a wiped-out pool is a correct outcome
    p.initialize_round()
    p.check_invariants()
    # Actual: ZeroDivisionError in precise_of (division by the pool's CRF of 0).
    assert p.pending_stake("d") == 10**21
    assert p.unclaimable() == (0, 0)
    p.unbond("d", 10**21)
    assert p.locks("d") == {0: (10**21, p.round + p.params.unbonding_period)}


def test_position_wiped_by_a_full_slash_settles_into_a_zero_factor_carry() -> None:
    """After a pool is wiped (100 % delegator-wide slash), an old delegator's claim breaks it.

    The operator bonds again and is active in the pool's new epoch. The old
    delegator ``d`` (worth 0 now) calls ``claim_earnings``: settlement gives
    it a ``Carry(x=0, crf_base=0, reward_pending=True)``, and from then on
    ``pending_stake("d")``, ``unclaimable()``, ``claim_earnings("d")`` and
    ``bond("d", ...)`` raise ``ZeroDivisionError`` (``precise_of(.., crf_base=0)``),
    so ``d`` can never bond again. Found by hypothesis (long variant) through
    ``withdraw_fees`` of a wiped delegator that had fees from the slashed round.
    """
    p = Protocol(Params(slash_delegators=True), {"o": 10**24, "d": 10**24})
    p.bond("o", "o", 10**23)
    p.register_operator("o")
    p.bond("d", "o", 10**23)
    p.initialize_round()
    p.slash_operator("o", 1_000_000)
    p.initialize_round()
    p.bond("o", "o", 10**22)  # the operator starts over
    p.initialize_round()
    assert "o" in p.active_set
    p.claim_earnings("d")
    # Actual: ZeroDivisionError from here on.
    assert p.pending_stake("d") == 0
    assert p.unclaimable() == (0, 0)
    p.bond("d", "o", TOKEN)
    p.initialize_round()
    assert p.pending_stake("d") == TOKEN
    p.check_invariants()


@pytest.mark.parametrize(("fraction", "slashes"), [(999_999, 1), (999_000, 3), (999_999, 4)])
def test_near_total_pool_slashes_collapse_factor_precision(fraction: int, slashes: int) -> None:
    """Deep delegator-wide slashes shrink the pool's CRF; rewards then leak to nobody.

    The CRF is multiplied by ``keep / PPM`` at each slash (10**27 -> 10**21
    -> ...). A reward adds ``floor(crf_base * DR / S)`` to it, so the claims of
    fresh stake S joining the pool lose up to ``S / crf_base`` base units per
    reward: ~10**3 at a CRF of 10**21, ~2.6 * 10**6 at 10**18 (3 x 99.9 %), and
    the whole delegators' reward (~219 tokens) at 1000 (4 x 99.9999 %), where
    the increment truncates to 0. Far more than per-position rounding.
    """
    p = Protocol(
        Params(slash_delegators=True, max_active_operators=2),
        {"o": 10**24, "d": 10**24, "e": 10**25},
    )
    p.bond("o", "o", 10**24)
    p.register_operator("o", 0, 1_000_000)
    p.bond("d", "o", 10**24)
    p.initialize_round()
    for _ in range(slashes):
        p.slash_operator("o", fraction)
        p.initialize_round()
    fresh = 3 * 10**24 + 123_456_789_123_456_789
    p.bond("e", "o", fresh)  # fresh stake joins the pool
    p.initialize_round()
    p.check_invariants()
    if "o" in p.active_set:
        assert p.reward("o") > 100 * TOKEN
        p.initialize_round()
        assert p.reward("o") > 100 * TOKEN
        p.check_invariants()
    else:
        # A pool wiped out by the slashes no longer earns; fresh stake is intact.
        assert p.pending_stake("e") == fresh
    stake_dust, _ = p.unclaimable()
    # Actual: 5667 units (1 x 99.9999 %), 2_654_911 units (3 x 99.9 %); before
    # pools were wiped below a floor, 219.5 tokens (4 x 99.9999 %).
    assert 0 <= stake_dust <= 4 * 4 * (p.round + 1), stake_dust
