CREATE TABLE public.alert_events (
    event_key character varying(255) NOT NULL,
    alert_id integer,
    received_at double precision NOT NULL
);
CREATE TABLE public.alerts (
    id integer NOT NULL,
    source character varying(16) NOT NULL,
    key character varying(255) NOT NULL,
    name character varying(255) NOT NULL,
    summary text NOT NULL,
    severity character varying(32) NOT NULL,
    labels text NOT NULL,
    url text,
    group_key text,
    status character varying(16) NOT NULL,
    started_at double precision NOT NULL,
    last_seen double precision NOT NULL,
    resolved_at double precision,
    acked_by character varying(32),
    acked_at double precision,
    snoozed_until double precision,
    silence_id character varying(64),
    last_notified_at double precision,
    escalated_at double precision,
    opened_at double precision,
    size integer NOT NULL,
    places text NOT NULL,
    transition character varying(16) NOT NULL,
    resolved_by character varying(32),
    silenced_until double precision
);
CREATE SEQUENCE public.alerts_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;
ALTER SEQUENCE public.alerts_id_seq OWNED BY public.alerts.id;
CREATE TABLE public.confirmations (
    phone character varying(32) NOT NULL,
    action text NOT NULL,
    expires_at double precision NOT NULL
);
CREATE TABLE public.messages (
    id integer NOT NULL,
    received_at double precision NOT NULL,
    message_sid character varying(64),
    phone character varying(32) NOT NULL,
    phone_masked character varying(32) NOT NULL,
    body text,
    command character varying(32),
    reply text,
    segments integer,
    latency_ms double precision,
    outcome character varying(16) NOT NULL,
    request_id character varying(32)
);
CREATE SEQUENCE public.messages_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;
ALTER SEQUENCE public.messages_id_seq OWNED BY public.messages.id;
CREATE TABLE public.monitor_cache (
    key character varying(64) NOT NULL,
    value text NOT NULL,
    expires_at double precision NOT NULL
);
CREATE TABLE public.outbox (
    id integer NOT NULL,
    to_number character varying(32) NOT NULL,
    body text NOT NULL,
    segments integer NOT NULL,
    kind character varying(16) NOT NULL,
    alert_id integer,
    status character varying(16) NOT NULL,
    created_at double precision NOT NULL,
    not_before double precision NOT NULL,
    attempts integer NOT NULL,
    claimed_by character varying(64),
    claimed_until double precision,
    provider_sid character varying(64),
    error_code character varying(16),
    error_message text,
    sent_at double precision,
    delivery_updated_at double precision,
    delivery_status character varying(16),
    digest_id integer
);
CREATE SEQUENCE public.outbox_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;
ALTER SEQUENCE public.outbox_id_seq OWNED BY public.outbox.id;
CREATE TABLE public.rate_limits (
    key character varying(255) NOT NULL,
    count integer NOT NULL,
    expires_at double precision NOT NULL
);
CREATE TABLE public.reply_pages (
    phone character varying(32) NOT NULL,
    pages text NOT NULL,
    next_page integer NOT NULL,
    created_at double precision NOT NULL
);
CREATE TABLE public.rule_states (
    rule character varying(64) NOT NULL,
    state character varying(16) NOT NULL,
    since double precision,
    alert_id integer,
    value double precision,
    evaluated_at double precision,
    next_eval_at double precision NOT NULL,
    failures integer NOT NULL,
    notice_sent integer NOT NULL,
    last_error text,
    evaluated_by character varying(64)
);
CREATE TABLE public.sms_pacing (
    key character varying(64) NOT NULL,
    next_at double precision NOT NULL
);
ALTER TABLE ONLY public.alerts ALTER COLUMN id SET DEFAULT nextval('public.alerts_id_seq'::regclass);
ALTER TABLE ONLY public.messages ALTER COLUMN id SET DEFAULT nextval('public.messages_id_seq'::regclass);
ALTER TABLE ONLY public.outbox ALTER COLUMN id SET DEFAULT nextval('public.outbox_id_seq'::regclass);
ALTER TABLE ONLY public.alert_events
    ADD CONSTRAINT alert_events_pkey PRIMARY KEY (event_key);
ALTER TABLE ONLY public.alerts
    ADD CONSTRAINT alerts_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.confirmations
    ADD CONSTRAINT confirmations_pkey PRIMARY KEY (phone);
ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_message_sid_key UNIQUE (message_sid);
ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.monitor_cache
    ADD CONSTRAINT monitor_cache_pkey PRIMARY KEY (key);
ALTER TABLE ONLY public.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.rate_limits
    ADD CONSTRAINT rate_limits_pkey PRIMARY KEY (key);
ALTER TABLE ONLY public.reply_pages
    ADD CONSTRAINT reply_pages_pkey PRIMARY KEY (phone);
ALTER TABLE ONLY public.rule_states
    ADD CONSTRAINT rule_states_pkey PRIMARY KEY (rule);
ALTER TABLE ONLY public.sms_pacing
    ADD CONSTRAINT sms_pacing_pkey PRIMARY KEY (key);
CREATE INDEX ix_alert_events_alert_id ON public.alert_events USING btree (alert_id);
CREATE INDEX ix_alert_events_received_at ON public.alert_events USING btree (received_at);
CREATE INDEX ix_alerts_key ON public.alerts USING btree (key);
CREATE INDEX ix_alerts_status ON public.alerts USING btree (status);
CREATE INDEX ix_messages_phone ON public.messages USING btree (phone);
CREATE INDEX ix_messages_received_at ON public.messages USING btree (received_at);
CREATE INDEX ix_monitor_cache_expires_at ON public.monitor_cache USING btree (expires_at);
CREATE INDEX ix_outbox_alert_id ON public.outbox USING btree (alert_id);
CREATE INDEX ix_outbox_digest_id ON public.outbox USING btree (digest_id);
CREATE INDEX ix_outbox_provider_sid ON public.outbox USING btree (provider_sid);
CREATE INDEX ix_outbox_status ON public.outbox USING btree (status);
CREATE INDEX ix_outbox_to_number ON public.outbox USING btree (to_number);
