//! Placeholder of the notifier's interface until its module lands: sends nothing.

#[derive(Clone, Default)]
pub struct Outbox;

pub struct AlertNotice {
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    pub starts_at_ms: i64,
    pub ends_at_ms: Option<i64>,
    pub generator_url: String,
}

pub struct WebhookNotice {
    pub rule: String,
    pub level: String,
    pub message: String,
    pub count: u64,
    pub window: String,
    pub time_ms: i64,
    pub labels: Vec<(String, String)>,
    pub state: String,
}

pub struct Series {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(i64, f64)>,
}

impl Outbox {
    pub fn disabled() -> Outbox {
        Outbox
    }
    pub fn send_alerts(&self, _tenant: &str, _alerts: Vec<AlertNotice>) -> bool {
        true
    }
    pub fn send_webhook(&self, _notice: WebhookNotice) -> bool {
        true
    }
    pub fn send_samples(&self, _tenant: &str, _series: Vec<Series>) -> bool {
        true
    }
    pub fn render_metrics(&self, _out: &mut String) {}
}
