//! placeholder: the HTTP/1.1 server and Loki routes.
