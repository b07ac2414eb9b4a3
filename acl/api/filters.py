"""Query filters of `acl-rules/` (django-filter; each one a query parameter in the schema)."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from django.db.models.functions import Left

from ..models import AclRule, Action, Effect, RuleRole, SubjectKind


class AclRuleFilter(django_filters.FilterSet):
    subject_kind = django_filters.ChoiceFilter(choices=SubjectKind.choices, help_text="Rules for this kind of subject.")
    subject_group = django_filters.CharFilter(field_name="subject_group__name", max_length=128,
                                              help_text="Rules written for this group (by name).")
    subject_device = django_filters.CharFilter(field_name="subject_device__name", max_length=128,
                                               help_text="Rules written for this device (by name).")
    subject_role = django_filters.ChoiceFilter(choices=RuleRole.choices, help_text="Rules written for this role.")
    subject_service = django_filters.CharFilter(max_length=128, help_text="Rules written for this service.")
    action = django_filters.ChoiceFilter(choices=Action.choices,
                                         help_text="Rules with exactly this action (`both` is its own value).")
    effect = django_filters.ChoiceFilter(choices=Effect.choices)
    enabled = django_filters.BooleanFilter(help_text="Only enabled (true) or disabled (false) rules.")
    topic = django_filters.CharFilter(field_name="topic_filter", method="filter_topic", max_length=1024,
                                      help_text="Rules whose topic filter equals this or starts with it "
                                                "(case-sensitive), e.g. `devices/`.")

    class Meta:
        model = AclRule
        fields = ["subject_kind", "subject_group", "subject_device", "subject_role", "subject_service", "action",
                  "effect", "enabled", "topic"]

    def filter_topic(self, queryset: QuerySet[AclRule], name: str, value: str) -> QuerySet[AclRule]:
        if not value:
            return queryset
        # Not `startswith`: on SQLite that is LIKE, which ignores case. The head of the filter
        # compared with `=` is exact on every database.
        return queryset.annotate(topic_head=Left("topic_filter", len(value))).filter(topic_head=value)
