//! Envelope encryption for Chartroom (work in progress).
