"""Typed refusals: every rejected transaction raises one of these and changes nothing."""

from __future__ import annotations


class StakerayError(Exception):
    """The root of every error stakeray reports: a refusal, bad input, a failed run.

    The message is one line that names the field, rule or file; the command
    line prints it as ``error: ...`` and exits 2.
    """


class ProtocolError(StakerayError):
    """Base class of every refusal; the message is one line naming the field or rule."""


class InvalidArgument(ProtocolError):
    """A transaction field has the wrong type (a bool for an integer, a list for an address)."""


class InvalidAmount(ProtocolError):
    """An amount is zero, negative or not an integer."""


class InvalidFraction(ProtocolError):
    """A PPM fraction lies outside its range."""


class InsufficientBalance(ProtocolError):
    """The liquid balance is below the amount."""


class InsufficientBond(ProtocolError):
    """The bonded stake is below the amount."""


class InsufficientFees(ProtocolError):
    """The claimable fees are below the amount."""


class UnknownAccount(ProtocolError):
    """The address has no account or no delegator record."""


class UnknownOperator(ProtocolError):
    """The address is not a registered operator."""


class AlreadyRegistered(ProtocolError):
    """The operator is already registered."""


class NotSelfBonded(ProtocolError):
    """Registration needs a self-bond first."""


class OperatorCannotDelegate(ProtocolError):
    """A registered operator cannot bond to another operator."""


class NotBonded(ProtocolError):
    """The account has no bond or no delegate."""


class UnknownLock(ProtocolError):
    """No unbonding lock with that id."""


class LockNotWithdrawable(ProtocolError):
    """The lock's withdraw round has not come yet."""


class OperatorNotActive(ProtocolError):
    """The operator is not in the active set this round."""


class AlreadyCheckpointed(ProtocolError):
    """The operator already called reward in this round."""


class CommissionTooHigh(ProtocolError):
    """A take is above ``max_take``."""


class CommissionTooLow(ProtocolError):
    """A take is below ``min_take``."""


class CommissionCooldown(ProtocolError):
    """An increase came before the cooldown ended."""


class CommissionUnchanged(ProtocolError):
    """The requested commission equals the current one."""


class NotOwner(ProtocolError):
    """The sender does not own the operator."""


class InvalidParams(ProtocolError):
    """A parameter change does not validate."""


class UnknownProposal(ProtocolError):
    """No proposal with that id."""


class VotingClosed(ProtocolError):
    """The proposal's voting period is over."""


class AlreadyVoted(ProtocolError):
    """The account already voted on this proposal."""


class NoVotingPower(ProtocolError):
    """The account has no active stake to vote or propose with."""


class InvalidChoice(ProtocolError):
    """A vote choice is not for, against or abstain."""


class DuplicateTransaction(ProtocolError):
    """A transaction with this nonce or id was already applied."""


class BadSignature(ProtocolError):
    """A signed transaction failed verification."""


class WrongChain(ProtocolError):
    """A signed transaction was signed for another network (another genesis)."""


class NonceError(ProtocolError):
    """A signed transaction's nonce is ahead of the sender's next nonce (a gap)."""


class InsufficientCollateral(ProtocolError):
    """Free collateral is below the amount or a task's requirement."""


class UnknownCoprocessor(ProtocolError):
    """The address is not a registered coprocessor."""


class UnknownTask(ProtocolError):
    """No open task with that id."""


class TaskStateError(ProtocolError):
    """The task is not in the state the transaction needs (escrowed or assigned)."""


class CoprocessorUnavailable(ProtocolError):
    """The coprocessor is full, below the reputation floor, or excluded from the task."""
