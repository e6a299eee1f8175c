//! Tenant ids, validated as Loki validates `X-Scope-OrgID`.

/// The tenant used when none is given and auth is off: Loki's own default, so that clients
/// moving from a single-tenant Loki find their data under the same id.
pub const DEFAULT_TENANT: &str = "fake";

/// Loki's limit on a tenant id's length.
pub const TENANT_BYTES_MAX: usize = 150;

/// Checks a tenant id the way Loki's `tenant.ValidTenantID` does: 1 to 150 bytes of
/// `[A-Za-z0-9!-_.*'()]`, and not `.` or `..`.
pub fn validate_tenant(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("tenant ID is empty".into());
    }
    if id.len() > TENANT_BYTES_MAX {
        return Err(format!(
            "tenant ID is too long: max {TENANT_BYTES_MAX} characters, got {}",
            id.len()
        ));
    }
    if id == "." || id == ".." {
        return Err("tenant ID is '.' or '..'".into());
    }
    if let Some(c) = id.chars().find(|c| !is_tenant_char(*c)) {
        return Err(format!(
            "tenant ID '{id}' contains unsupported character '{c}'"
        ));
    }
    Ok(())
}

fn is_tenant_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '!' | '-' | '_' | '.' | '*' | '\'' | '(' | ')')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loki_rules() {
        assert!(validate_tenant("fake").is_ok());
        assert!(validate_tenant("team-a_1.prod(x)*'!").is_ok());
        assert!(validate_tenant("").is_err());
        assert!(validate_tenant(".").is_err());
        assert!(validate_tenant("..").is_err());
        assert!(validate_tenant("a/b").is_err());
        assert!(validate_tenant("a|b").is_err());
        assert!(validate_tenant(&"x".repeat(150)).is_ok());
        assert!(validate_tenant(&"x".repeat(151)).is_err());
    }
}
