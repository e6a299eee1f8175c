//! placeholder: the sealed chunk (part file) format.
