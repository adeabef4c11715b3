//! perio
