"""Catalog introspection: the structure of a PostgreSQL database as pydantic models.

    from replicator.introspect import introspect, Schema
    schema: Schema = introspect(conn, schemas=["public"])
"""

from .core import (
    DEFAULT_SCHEMAS,
    EXCLUDED_SCHEMAS,
    MANAGED_SCHEMAS,
    REPLICATOR_SCHEMA,
    SYSTEM_SCHEMAS,
    introspect,
)
from .models import (
    NON_STRUCTURAL_FIELDS,
    Column,
    Constraint,
    Domain,
    DomainConstraint,
    Enum,
    Extension,
    Function,
    Grant,
    Index,
    Namespace,
    Policy,
    RowCount,
    Schema,
    Sequence,
    Table,
    Trigger,
    View,
    ViewColumn,
)

__all__ = [
    "DEFAULT_SCHEMAS",
    "EXCLUDED_SCHEMAS",
    "MANAGED_SCHEMAS",
    "NON_STRUCTURAL_FIELDS",
    "REPLICATOR_SCHEMA",
    "SYSTEM_SCHEMAS",
    "Column",
    "Constraint",
    "Domain",
    "DomainConstraint",
    "Enum",
    "Extension",
    "Function",
    "Grant",
    "Index",
    "Namespace",
    "Policy",
    "RowCount",
    "Schema",
    "Sequence",
    "Table",
    "Trigger",
    "View",
    "ViewColumn",
    "introspect",
]
