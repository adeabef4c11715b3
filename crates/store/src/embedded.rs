//! Embedded PostgreSQL cluster supervisor (being written).
