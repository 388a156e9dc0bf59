//! Registry Server emulator.
