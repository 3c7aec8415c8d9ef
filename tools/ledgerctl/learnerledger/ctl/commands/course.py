"""``ledgerctl course add|categorise|approve|withdraw|list``: the course catalog."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from learnerledger.ctl.cli import Handler, command, group, instant_arg, with_connection


def register(commands: Any) -> None:
    course = group(commands, "course", "the course catalog")
    add = command(course, "add", cmd_course_add, "add a course (pending unless --approved)")
    add.add_argument("course_id")
    add.add_argument("--issuer", required=True)
    add.add_argument("--title", required=True)
    add.add_argument(
        "--level",
        required=True,
        help="NCrF level: 4.5, 5, 5.5, 6, 6.5, 7 or 8; skilling courses 1 to 8 in half steps",
    )
    add.add_argument(
        "--hours", type=int, help="notional learning hours (default: the sum of the components)"
    )
    add.add_argument(
        "--basis",
        choices=("ncrf", "nheqf"),
        default="ncrf",
        help="hours per credit: ncrf 30 h; nheqf 15 h theory, 30 h practical, 45 h experiential",
    )
    for component in ("theory", "practical", "experiential"):
        add.add_argument(
            f"--{component}-hours", type=int, default=0, help=f"hours of {component} (nheqf)"
        )
    add.add_argument("--skill", action="append")
    add.add_argument("--approved", action="store_true", help="approve its credit recommendation")
    add.add_argument(
        "--counts-as",
        metavar="COURSE_ID",
        help="a version of this course: a learner earns credit once for both",
    )
    categories = ("swayam_mooc", "micro_credential", "university_course", "skilling")
    add.add_argument(
        "--category",
        choices=categories,
        default="university_course",
        help="where its credit comes from, for the redemption caps (default university_course)",
    )
    categorise = command(
        course,
        "categorise",
        cmd_course_categorise,
        "set a course's category (for redemptions decided from now on)",
    )
    categorise.add_argument("course_id")
    categorise.add_argument("--category", required=True, choices=categories)
    categorise.add_argument("--reason", default="", help="why, for the audit trail")
    for state, verb in (("approved", "approve"), ("withdrawn", "withdraw")):
        change = command(course, verb, course_state_command(state), f"{verb} a course")
        change.add_argument("course_id")
        change.add_argument(
            "--effective-at",
            type=instant_arg,
            help="when the change takes effect (ISO 8601, with zone); default now",
        )
        change.add_argument("--reason", default="", help="why (required when backdating)")
    listing = command(course, "list", cmd_course_list, "list courses")
    listing.add_argument("--issuer")


async def cmd_course_add(args: argparse.Namespace) -> int:
    from learnerledger.domain.catalog import (
        NCRF_ALL_LEVELS,
        Course,
        CourseCategory,
        CreditRecommendation,
        HoursBasis,
        parse_level,
    )
    from learnerledger.postgres import catalog

    components = (args.theory_hours, args.practical_hours, args.experiential_hours)
    course = Course(
        course_id=args.course_id,
        issuer_id=args.issuer,
        title=args.title,
        level=parse_level(args.level, allowed=NCRF_ALL_LEVELS),
        notional_hours=args.hours if args.hours is not None else sum(components),
        hours_basis=HoursBasis(args.basis),
        theory_hours=args.theory_hours,
        practical_hours=args.practical_hours,
        experiential_hours=args.experiential_hours,
        credit_recommendation=CreditRecommendation.APPROVED
        if args.approved
        else CreditRecommendation.PENDING,
        skills=tuple(args.skill or ()),
        counts_as=args.counts_as or "",
        category=CourseCategory(args.category),
    )

    async def add(connection: Any) -> int:
        await catalog.add_course(connection, course)
        print(
            f"course {course.course_id} added ({course.credit_recommendation.value}, "
            f"{course.category.value})"
        )
        return 0

    return await with_connection(add)


async def cmd_course_categorise(args: argparse.Namespace) -> int:
    from learnerledger.domain.catalog import CourseCategory
    from learnerledger.postgres import catalog

    async def update(connection: Any) -> int:
        course = await catalog.set_category(
            connection, args.course_id, CourseCategory(args.category), reason=args.reason
        )
        print(
            f"course {course.course_id}: category {course.category.value} (for redemptions "
            "decided from now on)"
        )
        return 0

    return await with_connection(update)


def course_state_command(state: str) -> Handler:
    async def change(args: argparse.Namespace) -> int:
        from learnerledger.domain.catalog import CreditRecommendation, InvalidCourse
        from learnerledger.postgres import catalog

        async def update(connection: Any) -> int:
            try:
                course, change = await catalog.set_recommendation(
                    connection,
                    args.course_id,
                    CreditRecommendation(state),
                    effective_at=args.effective_at,
                    reason=args.reason,
                )
            except InvalidCourse as exc:
                print(f"ledgerctl: {exc}", file=sys.stderr)
                return 2
            print(
                f"course {course.course_id}: credit recommendation {state} "
                f"effective {change.effective_at.isoformat()} (change {change.change_id})"
            )
            return 0

        return await with_connection(update)

    return change


async def cmd_course_list(args: argparse.Namespace) -> int:
    from learnerledger.postgres import catalog

    async def show(connection: Any) -> int:
        courses = await catalog.list_courses(connection, issuer_id=args.issuer, limit=10_000)
        print(
            f"{'course':<24} {'issuer':<16} {'level':>5} {'hours':>6}  state      "
            f"{'category':<18} title"
        )
        for c in courses:
            print(
                f"{c.course_id:<24} {c.issuer_id:<16} {c.level!s:>5} {c.notional_hours:>6}  "
                f"{c.credit_recommendation.value:<10} {c.category.value:<18} {c.title}"
            )
        return 0

    return await with_connection(show)
