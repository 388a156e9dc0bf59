//! TODO(owner): see ARCHITECTURE.md
