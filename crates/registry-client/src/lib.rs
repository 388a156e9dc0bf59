//! Typed client for the Registry Server HTTP API.
