CREATE TABLE messages (
	id INTEGER NOT NULL, 
	received_at FLOAT NOT NULL, 
	message_sid VARCHAR(64), 
	phone VARCHAR(32) NOT NULL, 
	phone_masked VARCHAR(32) NOT NULL, 
	body TEXT, 
	command VARCHAR(32), 
	reply TEXT, 
	segments INTEGER, 
	latency_ms FLOAT, 
	outcome VARCHAR(16) NOT NULL, 
	request_id VARCHAR(32), 
	PRIMARY KEY (id), 
	UNIQUE (message_sid)
);
CREATE INDEX ix_messages_phone ON messages (phone);
CREATE INDEX ix_messages_received_at ON messages (received_at);
CREATE TABLE rate_limits (
	"key" VARCHAR(255) NOT NULL, 
	count INTEGER NOT NULL, 
	expires_at FLOAT NOT NULL, 
	PRIMARY KEY ("key")
);
CREATE TABLE reply_pages (
	phone VARCHAR(32) NOT NULL, 
	pages TEXT NOT NULL, 
	next_page INTEGER NOT NULL, 
	created_at FLOAT NOT NULL, 
	PRIMARY KEY (phone)
);
CREATE TABLE confirmations (
	phone VARCHAR(32) NOT NULL, 
	action TEXT NOT NULL, 
	expires_at FLOAT NOT NULL, 
	PRIMARY KEY (phone)
);
CREATE TABLE outbox (
	id INTEGER NOT NULL, 
	to_number VARCHAR(32) NOT NULL, 
	body TEXT NOT NULL, 
	segments INTEGER NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	alert_id INTEGER, 
	status VARCHAR(16) NOT NULL, 
	created_at FLOAT NOT NULL, 
	not_before FLOAT NOT NULL, 
	attempts INTEGER NOT NULL, 
	claimed_by VARCHAR(64), 
	claimed_until FLOAT, 
	provider_sid VARCHAR(64), 
	error_code VARCHAR(16), 
	error_message TEXT, 
	sent_at FLOAT, 
	delivery_updated_at FLOAT, 
	delivery_status VARCHAR(16), 
	digest_id INTEGER, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_outbox_provider_sid ON outbox (provider_sid);
CREATE INDEX ix_outbox_status ON outbox (status);
CREATE INDEX ix_outbox_alert_id ON outbox (alert_id);
CREATE INDEX ix_outbox_digest_id ON outbox (digest_id);
CREATE INDEX ix_outbox_to_number ON outbox (to_number);
CREATE TABLE alerts (
	id INTEGER NOT NULL, 
	source VARCHAR(16) NOT NULL, 
	"key" VARCHAR(255) NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	summary TEXT NOT NULL, 
	severity VARCHAR(32) NOT NULL, 
	labels TEXT NOT NULL, 
	url TEXT, 
	group_key TEXT, 
	status VARCHAR(16) NOT NULL, 
	started_at FLOAT NOT NULL, 
	last_seen FLOAT NOT NULL, 
	resolved_at FLOAT, 
	acked_by VARCHAR(32), 
	acked_at FLOAT, 
	snoozed_until FLOAT, 
	silence_id VARCHAR(64), 
	last_notified_at FLOAT, 
	escalated_at FLOAT, 
	opened_at FLOAT, 
	size INTEGER NOT NULL, 
	places TEXT NOT NULL, 
	transition VARCHAR(16) NOT NULL, 
	resolved_by VARCHAR(32), 
	silenced_until FLOAT, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_alerts_status ON alerts (status);
CREATE INDEX ix_alerts_key ON alerts ("key");
CREATE TABLE alert_events (
	event_key VARCHAR(255) NOT NULL, 
	alert_id INTEGER, 
	received_at FLOAT NOT NULL, 
	PRIMARY KEY (event_key)
);
CREATE INDEX ix_alert_events_received_at ON alert_events (received_at);
CREATE INDEX ix_alert_events_alert_id ON alert_events (alert_id);
CREATE TABLE rule_states (
	rule VARCHAR(64) NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	since FLOAT, 
	alert_id INTEGER, 
	value FLOAT, 
	evaluated_at FLOAT, 
	next_eval_at FLOAT NOT NULL, 
	failures INTEGER NOT NULL, 
	notice_sent INTEGER NOT NULL, 
	last_error TEXT, 
	evaluated_by VARCHAR(64), 
	PRIMARY KEY (rule)
);
CREATE TABLE sms_pacing (
	"key" VARCHAR(64) NOT NULL, 
	next_at FLOAT NOT NULL, 
	PRIMARY KEY ("key")
);
CREATE TABLE monitor_cache (
	"key" VARCHAR(64) NOT NULL, 
	value TEXT NOT NULL, 
	expires_at FLOAT NOT NULL, 
	PRIMARY KEY ("key")
);
CREATE INDEX ix_monitor_cache_expires_at ON monitor_cache (expires_at);
