//! What an operation on a slot does, as the backends and the fault plans both
//! name it.

/// Read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Read from the file into the slot's buffer.
    Read,
    /// Write the slot's buffer to the file.
    Write,
}
