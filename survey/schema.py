"""The survey database, as SQLAlchemy 2.0 typed models. Read it as the documentation of the schema.

Integrity lives in the database, not only in Python: unique votes, CHECKs on sides and lengths, and
composite foreign keys that make a vote agree with its assignment. Votes are protected: deleting an
assignment (or the study above it) that has votes fails in the database itself.

Changing anything here needs an Alembic revision in ``survey/migrations/versions`` (a test compares
the migrated schema with this metadata), so a study in progress survives an upgrade.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger, Boolean, CheckConstraint, DateTime, ForeignKey, ForeignKeyConstraint, Index, Integer,
    MetaData, String, Text, UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

RATER_ID_MAX = 200
SIDES = ("left", "right", "none")
SIGN_IN_OUTCOMES = ("success", "failure", "locked", "reset")
CLIENT_ADDRESS_MAX = 64  # an IPv6 address with a zone id fits

# Explicit constraint names so Alembic migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text, so we add UTC back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; pass a timezone-aware UTC datetime")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Study(Base):
    """One imported study package plus how it is run (open, invitations, repeats)."""

    __tablename__ = "studies"
    __table_args__ = (
        CheckConstraint("repeats >= 0", name="repeats_non_negative"),
        CheckConstraint("n_raters >= 0", name="n_raters_non_negative"),
        CheckConstraint("task IN ('pairwise', 'distinction')", name="task_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    question: Mapped[str] = mapped_column(Text)  # contains "{label}"
    instructions: Mapped[str] = mapped_column(Text)
    consent: Mapped[str | None] = mapped_column(Text)
    allow_no_preference: Mapped[bool] = mapped_column(Boolean)
    is_open: Mapped[bool] = mapped_column(Boolean)
    invite_only: Mapped[bool] = mapped_column(Boolean)
    repeats: Mapped[int] = mapped_column(Integer)  # items shown twice per rater, sides swapped
    completion_code: Mapped[str] = mapped_column(String(32))
    completion_redirect: Mapped[str | None] = mapped_column(Text)  # template with {code} {rater} {study}
    seed: Mapped[int] = mapped_column(BigInteger)  # study-wide seed for counterbalancing sides
    n_raters: Mapped[int] = mapped_column(Integer)  # next rater sequence number (allocated atomically)
    package_root: Mapped[str] = mapped_column(Text)  # absolute path; files are read via resolve_inside
    fingerprint: Mapped[str] = mapped_column(String(64))  # package content + import options
    manifest_json: Mapped[str] = mapped_column(Text)  # the validated manifest, verbatim
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # What raters do: "pairwise" (assignments + votes) or "distinction" (the distinction_* tables).
    task: Mapped[str] = mapped_column(String(16), server_default="pairwise")

    methods: Mapped[list[Method]] = relationship(back_populates="study", cascade="all, delete-orphan",
                                                 passive_deletes=True, order_by="Method.ordinal")
    items: Mapped[list[Item]] = relationship(back_populates="study", cascade="all, delete-orphan",
                                             passive_deletes=True, order_by="Item.ordinal")


class Method(Base):
    """A CAM method of a study; ``role`` marks the proposed and the baseline method (one each)."""

    __tablename__ = "methods"
    __table_args__ = (
        UniqueConstraint("study_id", "name"),
        UniqueConstraint("study_id", "role"),  # NULLs are distinct: many methods without a role
        UniqueConstraint("study_id", "id"),  # target of composite keys that pin a method to its study
        CheckConstraint("role IN ('proposed', 'baseline')", name="role_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str | None] = mapped_column(String(16))
    ordinal: Mapped[int] = mapped_column(Integer)

    study: Mapped[Study] = relationship(back_populates="methods")


class Item(Base):
    """One image to judge (or an attention check, whose ``expected`` method is the correct answer)."""

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("study_id", "key"),
        UniqueConstraint("study_id", "ordinal"),
        ForeignKeyConstraint(["study_id", "expected_method_id"], ["methods.study_id", "methods.id"],
                             name="fk_items_expected_method"),
        CheckConstraint("is_attention_check = (expected_method_id IS NOT NULL)", name="expected_iff_check"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))  # the manifest's item id
    ordinal: Mapped[int] = mapped_column(Integer)  # order in the manifest
    label: Mapped[str] = mapped_column(Text)
    image_path: Mapped[str] = mapped_column(Text)  # relative to the study's package_root
    mask_path: Mapped[str | None] = mapped_column(Text)
    is_attention_check: Mapped[bool] = mapped_column(Boolean)
    expected_method_id: Mapped[int | None] = mapped_column(Integer)

    study: Mapped[Study] = relationship(back_populates="items")
    maps: Mapped[list[ItemMap]] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class ItemMap(Base):
    """The CAM overlay (and optional raw heatmap) of one method for one item."""

    __tablename__ = "item_maps"

    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    method_id: Mapped[int] = mapped_column(ForeignKey("methods.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(Text)  # relative to the study's package_root
    heatmap_path: Mapped[str | None] = mapped_column(Text)


class Rater(Base):
    """A person taking a study. ``seq`` (0, 1, 2, ... in arrival order) decides the sides, ``seed``
    the order."""

    __tablename__ = "raters"
    __table_args__ = (
        UniqueConstraint("study_id", "external_id"),
        UniqueConstraint("study_id", "seq"),
        CheckConstraint(f"length(external_id) BETWEEN 1 AND {RATER_ID_MAX}", name="external_id_length"),
        CheckConstraint("seq >= 0", name="seq_non_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(RATER_ID_MAX))  # verbatim, e.g. a Prolific PID
    seq: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Assignment(Base):
    """One trial of a rater's sequence: which item, at which position, which method on the left."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("rater_id", "position"),
        UniqueConstraint("rater_id", "item_id", "is_repeat"),
        # Target of the votes' composite foreign key.
        UniqueConstraint("id", "rater_id", "item_id", "is_repeat", name="uq_assignments_vote_key"),
        CheckConstraint("position >= 1", name="position_positive"),
        CheckConstraint("left_method_id <> right_method_id", name="two_methods"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # 1-based
    left_method_id: Mapped[int] = mapped_column(ForeignKey("methods.id"))
    right_method_id: Mapped[int] = mapped_column(ForeignKey("methods.id"))
    is_repeat: Mapped[bool] = mapped_column(Boolean)  # second showing, sides swapped
    token: Mapped[str] = mapped_column(String(32), unique=True)  # opaque id handed to the browser
    shown_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # first display, server clock


class Vote(Base):
    """A rater's answer to one assignment. Unique per assignment and per (rater, item, repeat)."""

    __tablename__ = "votes"
    __table_args__ = (
        UniqueConstraint("assignment_id"),
        UniqueConstraint("rater_id", "item_id", "is_repeat"),
        # The vote must agree with its assignment; no ON DELETE: votes block deleting what they belong to.
        ForeignKeyConstraint(["assignment_id", "rater_id", "item_id", "is_repeat"],
                             ["assignments.id", "assignments.rater_id", "assignments.item_id",
                              "assignments.is_repeat"], name="fk_votes_assignment"),
        # The chosen method must have a map for this item.
        ForeignKeyConstraint(["item_id", "chosen_method_id"], ["item_maps.item_id", "item_maps.method_id"],
                             name="fk_votes_chosen_map"),
        CheckConstraint("chosen_side IN ('left', 'right', 'none')", name="side_known"),
        CheckConstraint("(chosen_side = 'none') = (chosen_method_id IS NULL)", name="method_iff_side"),
        CheckConstraint("response_ms >= 0", name="response_ms_non_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(Integer)
    rater_id: Mapped[int] = mapped_column(Integer)
    item_id: Mapped[int] = mapped_column(Integer)
    is_repeat: Mapped[bool] = mapped_column(Boolean)
    chosen_method_id: Mapped[int | None] = mapped_column(Integer)  # None: "no preference"
    chosen_side: Mapped[str] = mapped_column(String(5))
    response_ms: Mapped[int] = mapped_column(Integer)  # server time from first display to this vote
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DistinctionItem(Base):
    """Task data of an item of a distinction study. Its ``is_attention_check`` is the item's flag:
    ``items.is_attention_check`` / ``expected_method_id`` describe pairwise checks (a check there
    needs an expected *method*; a distinction check's answer is its rank-1 candidate), so they stay
    false / NULL for distinction items. A row here exists for every item of a distinction study."""

    __tablename__ = "distinction_items"

    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    is_attention_check: Mapped[bool] = mapped_column(Boolean)


class DistinctionCandidate(Base):
    """One map of a distinction item: a class of the model's top-k, as one method's CAM.

    ``ordinal`` is the index in the package's list (what exports call an index); ``rank`` the class's
    rank in the model's scores (1 = the prediction, i.e. the right answer). Never sent to a browser."""

    __tablename__ = "distinction_candidates"
    __table_args__ = (
        UniqueConstraint("item_id", "method_id", "ordinal"),  # target of the answers' chosen candidate
        UniqueConstraint("item_id", "method_id", "rank"),
        CheckConstraint("ordinal >= 0", name="ordinal_non_negative"),
        CheckConstraint("rank >= 1", name="rank_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    method_id: Mapped[int] = mapped_column(ForeignKey("methods.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(Text)  # the class name shown with the map
    path: Mapped[str] = mapped_column(Text)  # relative to the study's package_root
    rank: Mapped[int] = mapped_column(Integer)


class DistinctionRater(Base):
    """The one method a rater of a distinction study sees (between subjects), fixed at creation."""

    __tablename__ = "distinction_raters"
    __table_args__ = (UniqueConstraint("rater_id", "method_id"),)  # target of the trials' composite key

    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id", ondelete="CASCADE"), primary_key=True)
    method_id: Mapped[int] = mapped_column(ForeignKey("methods.id", ondelete="CASCADE"))


class DistinctionTrial(Base):
    """One trial of a distinction rater: which item, at which position, the candidates' screen order."""

    __tablename__ = "distinction_trials"
    __table_args__ = (
        UniqueConstraint("rater_id", "position"),
        UniqueConstraint("rater_id", "item_id", "is_repeat"),
        UniqueConstraint("id", "rater_id", "item_id", "is_repeat", "method_id",
                         name="uq_distinction_trials_answer_key"),
        # The trial's method is its rater's method.
        ForeignKeyConstraint(["rater_id", "method_id"], ["distinction_raters.rater_id",
                                                         "distinction_raters.method_id"],
                             name="fk_distinction_trials_rater_method", ondelete="CASCADE"),
        CheckConstraint("position >= 1", name="position_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    method_id: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)  # 1-based
    is_repeat: Mapped[bool] = mapped_column(Boolean)  # second showing, new candidate order
    # Candidate ordinals in screen order, e.g. "2,0,3,1": screen slot s shows candidate order[s].
    candidate_order: Mapped[str] = mapped_column(String(64))
    token: Mapped[str] = mapped_column(String(32), unique=True)  # opaque id handed to the browser
    shown_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # first display, server clock


class DistinctionAnswer(Base):
    """A rater's answer to one distinction trial: the chosen candidate and their confidence (1-5).

    Unique per trial and per (rater, item, repeat); no ON DELETE, so answers block deleting what they
    belong to, like votes."""

    __tablename__ = "distinction_answers"
    __table_args__ = (
        UniqueConstraint("trial_id"),
        UniqueConstraint("rater_id", "item_id", "is_repeat"),
        ForeignKeyConstraint(["trial_id", "rater_id", "item_id", "is_repeat", "method_id"],
                             ["distinction_trials.id", "distinction_trials.rater_id", "distinction_trials.item_id",
                              "distinction_trials.is_repeat", "distinction_trials.method_id"],
                             name="fk_distinction_answers_trial"),
        # The chosen candidate exists for this item and the trial's method (so the index is in range).
        ForeignKeyConstraint(["item_id", "method_id", "chosen_ordinal"],
                             ["distinction_candidates.item_id", "distinction_candidates.method_id",
                              "distinction_candidates.ordinal"], name="fk_distinction_answers_chosen"),
        CheckConstraint("confidence BETWEEN 1 AND 5", name="confidence_range"),
        CheckConstraint("chosen_slot >= 0", name="chosen_slot_non_negative"),
        CheckConstraint("response_ms >= 0", name="response_ms_non_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(Integer)
    rater_id: Mapped[int] = mapped_column(Integer)
    item_id: Mapped[int] = mapped_column(Integer)
    is_repeat: Mapped[bool] = mapped_column(Boolean)
    method_id: Mapped[int] = mapped_column(Integer)
    chosen_ordinal: Mapped[int] = mapped_column(Integer)  # index into the method's candidate list
    chosen_slot: Mapped[int] = mapped_column(Integer)  # where it was on screen (0-based), for position bias
    confidence: Mapped[int] = mapped_column(Integer)
    response_ms: Mapped[int] = mapped_column(Integer)  # server time from first display to this answer
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AdminSignIn(Base):
    """One attempt to sign in to the admin page: the audit log *and* the lockout state.

    ``failure`` is a wrong password; ``locked`` an attempt refused unchecked during a lockout;
    ``reset`` an operator clearing every lockout (``python -m survey.study unlock-admin``). Failures
    since the last success or reset (per client address, and over all addresses) decide the lockout
    (:mod:`survey.admin_auth`), so the state survives restarts and every replica sees the same.
    ``id`` gives the order (clocks may jump; ids do not).
    """

    __tablename__ = "admin_sign_ins"
    __table_args__ = (
        CheckConstraint("outcome IN ('success', 'failure', 'locked', 'reset')", name="outcome_known"),
        CheckConstraint("client_address IS NULL OR "
                        f"length(client_address) BETWEEN 1 AND {CLIENT_ADDRESS_MAX}", name="client_address_length"),
        Index(None, "outcome", "client_address", "id"),  # "failures since the last success" per address
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)  # server time (the database's on PostgreSQL)
    client_address: Mapped[str | None] = mapped_column(String(CLIENT_ADDRESS_MAX))  # None: not known
    outcome: Mapped[str] = mapped_column(String(7))
