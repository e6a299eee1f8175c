//! placeholder: LogQL.
