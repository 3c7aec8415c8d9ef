"""The enum tables between the domain's values and the protobuf enums they travel as."""

from __future__ import annotations

from learnerledger.domain.catalog import CourseCategory, CreditRecommendation, HoursBasis
from learnerledger.domain.entries import EntryKind
from learnerledger.domain.events import ConsentBasis, Result
from learnerledger.domain.redemption import Outcome
from learnerledger.v1 import common_pb2, events_pb2

LEVEL_TO_PROTO: dict[str, common_pb2.NcrfLevel.ValueType] = {
    "4.5": common_pb2.NCRF_LEVEL_4_5,
    "5": common_pb2.NCRF_LEVEL_5,
    "5.5": common_pb2.NCRF_LEVEL_5_5,
    "6": common_pb2.NCRF_LEVEL_6,
    "6.5": common_pb2.NCRF_LEVEL_6_5,
    "7": common_pb2.NCRF_LEVEL_7,
    "8": common_pb2.NCRF_LEVEL_8,
    "1": common_pb2.NCRF_LEVEL_1,
    "1.5": common_pb2.NCRF_LEVEL_1_5,
    "2": common_pb2.NCRF_LEVEL_2,
    "2.5": common_pb2.NCRF_LEVEL_2_5,
    "3": common_pb2.NCRF_LEVEL_3,
    "3.5": common_pb2.NCRF_LEVEL_3_5,
    "4": common_pb2.NCRF_LEVEL_4,
    "7.5": common_pb2.NCRF_LEVEL_7_5,
}
PROTO_TO_LEVEL: dict[common_pb2.NcrfLevel.ValueType, str] = {
    v: k for k, v in LEVEL_TO_PROTO.items()
}
RESULT_TO_PROTO = {
    Result.PASS: common_pb2.COMPLETION_RESULT_PASS,
    Result.FAIL: common_pb2.COMPLETION_RESULT_FAIL,
}
PROTO_TO_RESULT = {v: k for k, v in RESULT_TO_PROTO.items()}
KIND_TO_PROTO = {
    EntryKind.CREDIT_AWARDED: events_pb2.ENTRY_KIND_CREDIT_AWARDED,
    EntryKind.RECORDED_WITHOUT_CREDIT: events_pb2.ENTRY_KIND_RECORDED_WITHOUT_CREDIT,
    EntryKind.CREDIT_REVOKED: events_pb2.ENTRY_KIND_CREDIT_REVOKED,
    EntryKind.CONSENT_GRANTED: events_pb2.ENTRY_KIND_CONSENT_GRANTED,
    EntryKind.CONSENT_REVOKED: events_pb2.ENTRY_KIND_CONSENT_REVOKED,
    EntryKind.CREDITS_REDEEMED: events_pb2.ENTRY_KIND_CREDITS_REDEEMED,
    EntryKind.REDEMPTION_REFUSED: events_pb2.ENTRY_KIND_REDEMPTION_REFUSED,
}
CATEGORY_TO_PROTO: dict[CourseCategory, common_pb2.CourseCategory.ValueType] = {
    CourseCategory.SWAYAM_MOOC: common_pb2.COURSE_CATEGORY_SWAYAM_MOOC,
    CourseCategory.MICRO_CREDENTIAL: common_pb2.COURSE_CATEGORY_MICRO_CREDENTIAL,
    CourseCategory.UNIVERSITY_COURSE: common_pb2.COURSE_CATEGORY_UNIVERSITY_COURSE,
    CourseCategory.SKILLING: common_pb2.COURSE_CATEGORY_SKILLING,
}
PROTO_TO_CATEGORY = {v: k for k, v in CATEGORY_TO_PROTO.items()}
RECOMMENDATION_TO_PROTO: dict[CreditRecommendation, common_pb2.CreditRecommendation.ValueType] = {
    CreditRecommendation.PENDING: common_pb2.CREDIT_RECOMMENDATION_PENDING,
    CreditRecommendation.APPROVED: common_pb2.CREDIT_RECOMMENDATION_APPROVED,
    CreditRecommendation.WITHDRAWN: common_pb2.CREDIT_RECOMMENDATION_WITHDRAWN,
}
OUTCOME_TO_PROTO: dict[Outcome, common_pb2.RedemptionOutcome.ValueType] = {
    Outcome.REDEEMED: common_pb2.REDEMPTION_OUTCOME_REDEEMED,
    Outcome.EXPIRED: common_pb2.REDEMPTION_OUTCOME_EXPIRED,
    Outcome.REVOKED: common_pb2.REDEMPTION_OUTCOME_REVOKED,
    Outcome.ALREADY_REDEEMED: common_pb2.REDEMPTION_OUTCOME_ALREADY_REDEEMED,
    Outcome.CAP_EXCEEDED: common_pb2.REDEMPTION_OUTCOME_CAP_EXCEEDED,
    Outcome.LEVEL_MISMATCH: common_pb2.REDEMPTION_OUTCOME_LEVEL_MISMATCH,
    Outcome.NO_CONSENT: common_pb2.REDEMPTION_OUTCOME_NO_CONSENT,
    Outcome.NOT_A_CREDENTIAL: common_pb2.REDEMPTION_OUTCOME_NOT_A_CREDENTIAL,
    Outcome.WITHHELD: common_pb2.REDEMPTION_OUTCOME_WITHHELD,
}
HOURS_BASIS_TO_PROTO = {
    "ncrf": common_pb2.HOURS_BASIS_NCRF,
    "nheqf_theory": common_pb2.HOURS_BASIS_NHEQF_THEORY,
    "nheqf_practical": common_pb2.HOURS_BASIS_NHEQF_PRACTICAL,
    "nheqf": common_pb2.HOURS_BASIS_NHEQF,
}
#: The bases a course may declare on CreateCourse (UNSPECIFIED: NCrF).
PROTO_TO_COURSE_BASIS: dict[common_pb2.HoursBasis.ValueType, HoursBasis] = {
    common_pb2.HOURS_BASIS_UNSPECIFIED: HoursBasis.NCRF,
    common_pb2.HOURS_BASIS_NCRF: HoursBasis.NCRF,
    common_pb2.HOURS_BASIS_NHEQF: HoursBasis.NHEQF,
}
NO_CREDIT_TO_PROTO = {
    "course_not_approved": events_pb2.NO_CREDIT_REASON_COURSE_NOT_APPROVED,
    "result_fail": events_pb2.NO_CREDIT_REASON_RESULT_FAIL,
    "zero_credits": events_pb2.NO_CREDIT_REASON_ZERO_CREDITS,
    "already_credited": events_pb2.NO_CREDIT_REASON_ALREADY_CREDITED,
}
BASIS_TO_PROTO = {
    ConsentBasis.LEARNER: common_pb2.CONSENT_BASIS_LEARNER,
    ConsentBasis.MANDATE: common_pb2.CONSENT_BASIS_MANDATE,
}
PROTO_TO_BASIS = {v: k for k, v in BASIS_TO_PROTO.items()}
