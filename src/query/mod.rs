//! placeholder: query parameters, evaluation, merge.
