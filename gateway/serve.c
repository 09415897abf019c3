/*
 * `pzpgw serve`: the daemon's life cycle. Load configuration and keys,
 * open the listeners, drop privileges, run the event loop; SIGHUP reloads,
 * SIGTERM/SIGINT finish requests in flight and exit 0.
 */
#define _DEFAULT_SOURCE /* setgroups() */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "api.h"
#include "cli.h"
#include "config.h"
#include "console.h"
#include "deliver.h"
#include "http.h"
#include "intake.h"
#include "provider.h"
#include "sdnotify.h"
#include "sign.h"
#include "store.h"
#include "store_backup.h"
#include "log.h"
#include "metrics.h"
#include "tls.h"
#include "util.h"
#include "version.h"

/* How long requests in flight may take to finish after SIGTERM. */
#define SERVE_GRACE_MS 30000
/* Retention runs just after start (off the start path), then hourly. */
#define SERVE_PRUNE_FIRST_S 1
#define SERVE_PRUNE_EVERY_S 3600
/* What systemd is asked to wait, at most, for the store's opening. */
#define SERVE_STORE_OPEN_USEC (600ull * 1000000u)

struct retired {
	struct retired *next;
	struct config *cfg;
	/* The signing key and trust replaced with cfg, or NULL: intake jobs
	 * still running may be using them. */
	struct sign_key *key;
	struct sign_trust *trust;
};

struct serve {
	const char *path;
	bool debug;
	struct config *cfg;
	struct retired *retired; /* older configs requests may still use */
	struct event_base *base;
	struct http_server *srv;
	struct api api;
	struct intake intake;
	struct console console;
	struct provider provider;
	struct store *store;
	struct deliver *deliver;
	struct event *ev_store;
	struct event *ev_prune;
	struct sign_key *key;
	struct sign_trust *trust;
	struct event *ev_term, *ev_int, *ev_hup;
	int store_lock;	    /* STORE.lock, held for the process's life */
	struct sdnotify sd; /* systemd notify; off without the variable */
	struct event *ev_watchdog; /* WATCHDOG=1 from the loop, or NULL */
	bool stopping;
};

static void
print_config_error(void *arg, const char *file, int line, const char *msg)
{
	if (line > 0)
		fprintf(stderr, "%s:%d: %s\n", file, line, msg);
	else
		fprintf(stderr, "%s: %s\n", file, msg);
}

static void
log_config_error(void *arg, const char *file, int line, const char *msg)
{
	char safe[256];

	log_warnx("event=config_error file=%s line=%d message=\"%s\"", file,
		  line, log_quoted(safe, sizeof(safe), msg));
}

static void
log_config_warning(void *arg, const char *file, int line, const char *msg)
{
	char safe[256];

	log_warnx("event=config_warning file=%s message=\"%s\"", file,
		  log_quoted(safe, sizeof(safe), msg));
}

static void
apply_logging(const struct serve *s)
{
	bool to_stderr = s->debug || (s->cfg->log != NULL &&
				      strcmp(s->cfg->log, "stderr") == 0);

	log_init(to_stderr ? LOG_TO_STDERR : LOG_TO_SYSLOG, s->debug, "pzpgw");
}

/* The node's name in log lines and metrics: [process] node, or with a
 * PostgreSQL store (shared by nodes) the host name as the store's lease
 * owner; a lone SQLite node without the key says nothing. Read at start
 * only (a reload keeps it: the store's leases carry it). */
static void
serve_node(const struct config *cfg)
{
	char host[256];
	const char *node = cfg->node;

	if (node == NULL && cfg->store_backend != NULL &&
	    strcmp(cfg->store_backend, "postgresql") == 0 &&
	    gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		node = host;
	}
	log_set_node(node);
	metrics_set_node(node);
}

/* Readiness of the store: open, its files still the ones it opened
 * (checked now), enough disk space to accept, and its database server
 * (PostgreSQL) answering. */
static bool
store_ready(void *arg, const char **reason)
{
	const struct serve *s = arg;
	enum store_file_state st;

	if (s->store == NULL) {
		*reason = "store_closed";
		return false;
	}
	if ((st = store_file_check(s->store)) != STORE_FILE_OK) {
		*reason = store_file_state_name(st);
		return false;
	}
	if (!store_disk_ok(s->store)) {
		*reason = "store_disk_low";
		return false;
	}
	/* A node whose database is down cannot accept: the load balancer
	   sends its clients to another node. */
	if (!store_reachable(s->store)) {
		*reason = "store_unreachable";
		return false;
	}
	return true;
}

/*
 * Load the signing key and the trust anchors for signatures of other
 * gateways. On failure the old ones stay and false is returned. The old
 * ones go to retired when given (a reload), else are freed.
 */
static bool
load_keys(struct serve *s, const struct config *cfg, struct retired *retired)
{
	struct sign_key *key = NULL;
	struct sign_trust *trust = NULL;
	const char *crls[1] = {cfg->tls_crl};
	char err[256];

	if (sign_key_load(cfg->sign_key, cfg->sign_cert, cfg->sign_chain,
			  cfg->sign_alg, &key, err, sizeof(err)) != GW_OK) {
		log_warnx("event=keys_failed what=signing_key message=\"%s\"",
			  err);
		return false;
	}
	if (sign_trust_new(cfg->tls_trust, crls, cfg->tls_crl ? 1 : 0, &trust,
			   err, sizeof(err)) != GW_OK) {
		log_warnx("event=keys_failed what=trust message=\"%s\"", err);
		sign_key_free(key);
		return false;
	}
	/* Jobs in the workers may be using the old key and trust (they take
	 * them when the request arrives). On a reload they are kept with
	 * the retired configuration until no request is pending: waiting
	 * here for the jobs would stop the loop thread for as long as a
	 * check may take ([limits] max_request_time). */
	if (retired != NULL) {
		retired->key = s->key;
		retired->trust = s->trust;
	} else {
		intake_workers_drain(&s->intake);
		sign_key_free(s->key);
		sign_trust_free(s->trust);
	}
	s->key = key;
	s->trust = trust;
	s->intake.key = key;
	s->intake.trust = trust;
	return true;
}

/* deliver_stu3_fn of the daemon: the intake's STU3 form of a message. */
static enum gw_err
serve_to_stu3(void *arg, const void *doc, size_t len, char **out,
	      size_t *out_len, size_t *notes, char *errbuf, size_t errlen)
{
	return intake_to_stu3(arg, doc, len, out, out_len, notes, errbuf,
			      errlen);
}

static void
kick_delivery(void *arg)
{
	struct serve *s = arg;

	if (s->deliver != NULL)
		deliver_kick(s->deliver);
}

/* Retention: delivered messages older than [store] retention days go,
 * and their space is reclaimed; dead letters stay until an operator
 * acts. Received data: inbound messages accepted longer than [store]
 * inbound_retention ago go with their inbox rows and index versions
 * (what the pull API serves); "keep" (0) keeps them. The store's upkeep
 * thread deletes in small batches and logs event=pruned /
 * event=pruned_inbound: a large backlog (e.g. retention shortened)
 * leaves the listeners answering. */
static void
on_prune(evutil_socket_t fd, short what, void *arg)
{
	struct serve *s = arg;
	struct timeval tv = {.tv_sec = SERVE_PRUNE_EVERY_S};
	uint64_t keep = s->cfg->store_inbound_retention_ms;
	int64_t now = util_wall_ms();
	int64_t before = now - (int64_t)s->cfg->store_retention_days * 86400000;

	(void)store_retention(s->store, before,
			      keep == 0 ? 0 : now - (int64_t)keep);
	evtimer_add(s->ev_prune, &tv);
}

static void
on_store(evutil_socket_t fd, short what, void *arg)
{
	struct serve *s = arg;

	store_dispatch(s->store);
}

/* Open the store (after privileges are dropped: it writes as the service
 * user) and return rows left in flight by a crash to due. */
static bool
open_store(struct serve *s)
{
	struct store_options opts;
	size_t recovered = 0;
	char err[256];
	enum gw_err rc;
	struct stat sb;
	bool existed;

	store_options_from_config(&opts, s->cfg);
	/* One process owns the store: a second gateway on the same file, or
	   `pzpgw restore` swapping it, must not run beside this one. The
	   lock goes with the process, also after kill -9. */
	{
		long holder = 0;

		rc = store_lock_take(s->cfg->store_path, &s->store_lock,
				     &holder);
		if (rc == GW_EXISTS) {
			log_warnx("event=startup_failed reason=store_locked "
				  "path=%s%s holder_pid=%ld "
				  "message=\"another gateway, or a restore, "
				  "uses this store\"",
				  s->cfg->store_path, STORE_LOCK_SUFFIX,
				  holder);
			fprintf(stderr,
				"pzpgw serve: the store %s is in use by "
				"process %ld\n",
				s->cfg->store_path, holder);
			return false;
		}
		if (rc != GW_OK)
			log_warn("event=store_lock_failed path=%s%s "
				 "action=running_without_it",
				 s->cfg->store_path, STORE_LOCK_SUFFIX);
	}
	existed = stat(s->cfg->store_path, &sb) == 0 && sb.st_size > 0;
	/* Opening migrates the schema, which on a large store after an
	   upgrade may take longer than systemd's start timeout (90 s by
	   default): ask for more before, rather than be killed midway. */
	(void)sdnotify_sendf(&s->sd,
			     "EXTEND_TIMEOUT_USEC=%llu\nSTATUS=opening the "
			     "store (a schema migration may take a while)",
			     (unsigned long long)SERVE_STORE_OPEN_USEC);
	rc = store_open(&opts, &s->store);
	if (rc == GW_NOTFOUND) {
		/* A store that vanished is not replaced by an empty one
		   behind the operator's back: acknowledged messages were in
		   it. Said on stderr too, which systemd keeps. */
		log_warnx("event=startup_failed reason=store_missing path=%s "
			  "message=\"no store (or an empty file) at this path, "
			  "where a store was made before (marker %s%s) or "
			  "[store] create = no: restore it from a backup, "
			  "or create an empty one with pzpgw queue -c %s "
			  "init\"",
			  s->cfg->store_path, s->cfg->store_path,
			  STORE_MARKER_SUFFIX, s->path);
		fprintf(stderr,
			"pzpgw serve: no store at %s; restore it, or create an "
			"empty one with: pzpgw queue -c %s init\n",
			s->cfg->store_path, s->path);
		return false;
	}
	if (rc == GW_EXISTS) {
		/* PostgreSQL: a live node with this [process] node name;
		   starting would take its deliveries in flight back. */
		log_warnx("event=startup_failed reason=node_name_in_use");
		fprintf(stderr,
			"pzpgw serve: another live node on this database is "
			"named the same; set [process] node to a name of its "
			"own\n");
		return false;
	}
	if (rc != GW_OK) {
		log_warnx("event=startup_failed reason=store path=%s "
			  "error=\"%s\"",
			  s->cfg->store_path, gw_strerror(rc));
		return false;
	}
	if ((rc = store_recover(s->store, &recovered)) != GW_OK) {
		log_warnx("event=startup_failed reason=store_recover "
			  "error=\"%s\"",
			  gw_strerror(rc));
		return false;
	}
	if (!existed)
		log_info("event=store_created path=%s create=%s",
			 s->cfg->store_path, s->cfg->store_create);
	if (recovered > 0)
		log_info("event=recovered rows=%zu state=due", recovered);
	s->ev_store = event_new(s->base, store_notify_fd(s->store),
				EV_READ | EV_PERSIST, on_store, s);
	if (s->ev_store == NULL || event_add(s->ev_store, NULL) != 0)
		return false;
	s->intake.store = s->store;
	{
		struct timeval tv = {.tv_sec = SERVE_PRUNE_FIRST_S};

		s->ev_prune = evtimer_new(s->base, on_prune, s);
		if (s->ev_prune == NULL || evtimer_add(s->ev_prune, &tv) != 0)
			return false;
	}
	if (deliver_new(s->base, s->store, s->cfg, &s->deliver, err,
			sizeof(err)) != GW_OK) {
		log_warnx("event=startup_failed reason=delivery message=\"%s\"",
			  err);
		return false;
	}
	s->intake.kick = kick_delivery;
	s->intake.kick_arg = s;
	deliver_set_stu3(s->deliver, serve_to_stu3, &s->intake);
	/* Rows left due by an earlier run go out now. */
	deliver_kick(s->deliver);
	return true;
}

static void
free_retired(struct serve *s)
{
	while (s->retired != NULL) {
		struct retired *r = s->retired;

		s->retired = r->next;
		config_free(r->cfg);
		sign_key_free(r->key);
		sign_trust_free(r->trust);
		free(r);
	}
}

/* Equal strings, or both NULL. */
static bool
serve_same_str(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Reload the configuration; returns a short line for systemd's STATUS=
 * (static; no patient data). */
static const char *
reload(struct serve *s)
{
	struct config *ncfg = NULL;
	SSL_CTX *nctx = NULL;
	struct retired *r;
	char err[256];

	log_info("event=reload_begin file=%s", s->path);
	if (config_load(s->path, log_config_error, NULL, &ncfg) != GW_OK) {
		log_warnx("event=reload_failed reason=config "
			  "action=keeping_old_configuration");
		return "reload failed (configuration): running with the "
		       "old configuration";
	}
	/* The identity and the store are fixed for the life of the process:
	 * the store is open, and its rows, the signing key and every peer's
	 * view of this gateway belong to the URA it started with. Half a
	 * change is worse than none, so the whole reload is refused. */
	{
		bool ura = strcmp(ncfg->ura, s->cfg->ura) != 0;
		bool path = strcmp(ncfg->store_path, s->cfg->store_path) != 0;
		bool store =
		    path ||
		    strcmp(ncfg->store_backend, s->cfg->store_backend) != 0 ||
		    !serve_same_str(ncfg->store_url, s->cfg->store_url);

		if (ura || store) {
			log_warnx(
			    "event=reload_failed reason=\"restart needed "
			    "to change %s%s%s\" running_ura=%s "
			    "file_ura=%s action=keeping_old_configuration",
			    ura ? "[organisation] ura" : "",
			    ura && store ? " and " : "",
			    !store ? ""
			    : path ? "[store] path"
				   : "[store] backend or url",
			    s->cfg->ura, ncfg->ura);
			config_free(ncfg);
			return "reload failed (restart needed for that "
			       "change): running with the old configuration";
		}
	}
	if (tls_server_ctx_new(ncfg, &nctx, err, sizeof(err)) != GW_OK) {
		log_warnx("event=reload_failed reason=tls message=\"%s\" "
			  "action=keeping_old_configuration",
			  err);
		config_free(ncfg);
		return "reload failed (TLS): running with the old "
		       "configuration";
	}
	if (strcmp(ncfg->listen_address, s->cfg->listen_address) != 0 ||
	    ncfg->listen_port != s->cfg->listen_port ||
	    strcmp(ncfg->admin_address, s->cfg->admin_address) != 0 ||
	    ncfg->admin_port != s->cfg->admin_port)
		log_warnx("event=reload_partial reason=\"listen address or "
			  "port changed: takes effect at restart\"");
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		log_warnx("event=reload_failed reason=out_of_memory");
		SSL_CTX_free(nctx);
		config_free(ncfg);
		return "reload failed (out of memory): running with the old "
		       "configuration";
	}
	if (http_server_pending(s->srv) == 0)
		free_retired(s);
	r->cfg = s->cfg;
	r->next = s->retired;
	s->retired = r;
	s->cfg = ncfg;
	http_server_reconfigure(s->srv, ncfg, nctx);
	if (s->deliver != NULL)
		deliver_reconfigure(s->deliver, ncfg);
	SSL_CTX_free(nctx); /* the server holds its own reference */
	apply_logging(s);
	if (!load_keys(s, ncfg, r)) {
		log_warnx("event=reload_partial reason=\"signing key or trust "
			  "not reloaded: keeping the old ones\"");
		log_info("event=reloaded organisation=%s peers=%zu", ncfg->ura,
			 ncfg->npeers);
		return "reloaded, but the signing key or trust was not: "
		       "keeping the old ones";
	}
	log_info("event=reloaded organisation=%s peers=%zu", ncfg->ura,
		 ncfg->npeers);
	return "configuration reloaded";
}

static void
shutdown_done(void *arg)
{
	struct serve *s = arg;

	/* Deliveries in flight are abandoned: their rows are due again. */
	if (s->deliver != NULL)
		deliver_stop(s->deliver);
	log_info("event=stopped");
	event_base_loopexit(s->base, NULL);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct serve *s = arg;

	if (sig == SIGHUP) {
		const char *status;

		if (s->stopping)
			return;
		/* systemd (Type=notify) waits for READY=1 after RELOADING=1,
		   also when the reload failed: the old configuration still
		   serves, and STATUS= says which happened. */
		(void)sdnotify_sendf(
		    &s->sd, "RELOADING=1\nMONOTONIC_USEC=%llu",
		    (unsigned long long)sdnotify_monotonic_usec());
		status = reload(s);
		(void)sdnotify_sendf(&s->sd, "READY=1\nSTATUS=%s", status);
		return;
	}
	if (s->stopping) {
		log_warnx("event=second_signal action=exit_now");
		event_base_loopexit(s->base, NULL);
		return;
	}
	s->stopping = true;
	(void)sdnotify_send(&s->sd, "STOPPING=1\nSTATUS=stopping: finishing "
				    "requests in flight");
	log_info("event=stopping signal=%s pending=%u",
		 sig == SIGTERM ? "TERM" : "INT", http_server_pending(s->srv));
	http_server_shutdown(s->srv, SERVE_GRACE_MS, shutdown_done, s);
}

/* The watchdog keep-alive: sent by a timer of the event loop itself, so
 * a loop that no longer turns (a handler stuck, a deadlock) stops the
 * keep-alives and systemd restarts the daemon. */
static void
on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct serve *s = arg;

	(void)sdnotify_send(&s->sd, "WATCHDOG=1");
}

/* READY=1 (every listener bound, the store open, the workers and the
 * signal handlers in place) and the watchdog timer when systemd asks
 * for one. */
static void
notify_ready(struct serve *s)
{
	uint64_t every = sdnotify_watchdog_interval(&s->sd);

	if (!sdnotify_enabled(&s->sd))
		return;
	if (every > 0) {
		struct timeval tv = {.tv_sec = (time_t)(every / 1000000u),
				     .tv_usec =
					 (suseconds_t)(every % 1000000u)};

		s->ev_watchdog =
		    event_new(s->base, -1, EV_PERSIST, on_watchdog, s);
		if (s->ev_watchdog == NULL ||
		    event_add(s->ev_watchdog, &tv) != 0)
			log_warnx("event=watchdog_timer_failed");
		else
			log_info("event=watchdog interval_ms=%llu",
				 (unsigned long long)(every / 1000u));
	}
	(void)sdnotify_sendf(&s->sd,
			     "READY=1\nSTATUS=serving organisation %s on "
			     "port %u (admin %u)%s",
			     s->cfg->ura, http_server_port(s->srv, false),
			     http_server_port(s->srv, true),
			     s->ev_watchdog != NULL ? "\nWATCHDOG=1" : "");
}

static int
drop_privileges(const char *user)
{
	struct passwd *pw;

	if (geteuid() != 0)
		return 0;
	if (user == NULL || *user == '\0') {
		log_warnx("event=running_as_root reason=\"[process] user is "
			  "not set\"");
		return 0;
	}
	errno = 0;
	if ((pw = getpwnam(user)) == NULL) {
		log_warnx("event=privilege_drop_failed user=%s reason=no_such_"
			  "user",
			  user);
		return -1;
	}
	if (setgroups(1, &pw->pw_gid) == -1 || setgid(pw->pw_gid) == -1 ||
	    setuid(pw->pw_uid) == -1) {
		log_warn("event=privilege_drop_failed user=%s", user);
		return -1;
	}
	if (setuid(0) != -1) {
		log_warnx("event=privilege_drop_failed user=%s "
			  "reason=could_regain_root",
			  user);
		return -1;
	}
	log_info("event=privileges_dropped user=%s uid=%ld", user,
		 (long)pw->pw_uid);
	return 0;
}

static struct event *
add_signal(struct serve *s, int sig)
{
	struct event *ev = evsignal_new(s->base, sig, on_signal, s);

	if (ev == NULL || evsignal_add(ev, NULL) != 0)
		fatalx("event=signal_setup_failed signal=%d", sig);
	return ev;
}

static int
serve_run(struct serve *s)
{
	struct provider *pv = &s->provider;
	/* Routes of the organisation listener (mutual TLS). The pull API's
	 * routes come last and match FHIR resource types only (their
	 * .types, set below), so that every other path stays 404; they
	 * need no permission here: provider_handle refuses organisations
	 * without allow = pull itself, and audits the refusal. */
	struct http_route org_routes[] = {
	    {"GET", "/fhir/metadata", 0, 0, api_metadata, &s->api, NULL},
	    {"POST", "/fhir/$validate", HTTP_ROUTE_HAS_BODY,
	     CONFIG_ALLOW_VALIDATE, intake_validate, &s->intake, NULL},
	    {"POST", "/fhir/*/$validate", HTTP_ROUTE_HAS_BODY,
	     CONFIG_ALLOW_VALIDATE, intake_validate, &s->intake, NULL},
	    {"POST", "/fhir/$process-message", HTTP_ROUTE_HAS_BODY,
	     CONFIG_ALLOW_PUSH, intake_process_message, &s->intake, NULL},
	    {"GET", "/fhir/$process-message/*", 0, CONFIG_ALLOW_PUSH,
	     intake_message_status, &s->intake, NULL},
	    {"GET", "/fhir/_history", 0, 0, provider_handle, pv, NULL},
	    {"GET", "/fhir/*", 0, 0, provider_handle, pv, NULL},
	    {"POST", "/fhir/*/_search", HTTP_ROUTE_FORM_BODY, 0,
	     provider_handle, pv, NULL},
	    {"GET", "/fhir/*/*", 0, 0, provider_handle, pv, NULL},
	    {"GET", "/fhir/*/*/_history", 0, 0, provider_handle, pv, NULL},
	    {"GET", "/fhir/*/*/_history/*", 0, 0, provider_handle, pv, NULL},
	    {NULL, NULL, 0, 0, NULL, NULL, NULL},
	};
	/* Routes of the admin listener (plain HTTP, loopback). */
	const struct http_route admin_routes[] = {
	    {"GET", "/healthz", 0, 0, api_healthz, &s->api, NULL},
	    {"GET", "/readyz", 0, 0, api_readyz, &s->api, NULL},
	    {"GET", "/metrics", 0, 0, api_metrics, &s->api, NULL},
	    /* The operator console (console.c). */
	    {"GET", "/", 0, 0, console_handle, &s->console, NULL},
	    {"GET", "/assets/*", 0, 0, console_handle, &s->console, NULL},
	    {"GET", "/login", 0, 0, console_handle, &s->console, NULL},
	    {"POST", "/login", HTTP_ROUTE_FORM_BODY, 0, console_handle,
	     &s->console, NULL},
	    {"POST", "/logout", HTTP_ROUTE_FORM_BODY, 0, console_handle,
	     &s->console, NULL},
	    {"GET", "/queue", 0, 0, console_handle, &s->console, NULL},
	    {"GET", "/queue/row", 0, 0, console_handle, &s->console, NULL},
	    {"GET", "/queue/act", 0, 0, console_handle, &s->console, NULL},
	    {"POST", "/queue/act", HTTP_ROUTE_FORM_BODY, 0, console_handle,
	     &s->console, NULL},
	    {"GET", "/usage", 0, 0, console_handle, &s->console, NULL},
	    {"GET", "/usage.csv", 0, 0, console_handle, &s->console, NULL},
	    {"GET", "/playground", 0, 0, console_handle, &s->console, NULL},
	    {"POST", "/playground", HTTP_ROUTE_FORM_BODY, 0, console_handle,
	     &s->console, NULL},
	    {NULL, NULL, 0, 0, NULL, NULL, NULL},
	};
	SSL_CTX *ctx = NULL;
	char err[256];
	int rc = CLI_FAIL;

	if (tls_server_ctx_new(s->cfg, &ctx, err, sizeof(err)) != GW_OK) {
		log_warnx("event=startup_failed reason=tls message=\"%s\"",
			  err);
		return CLI_FAIL;
	}
	if (intake_init(&s->intake, s->cfg, err, sizeof(err)) != GW_OK) {
		log_warnx("event=startup_failed reason=schemas dir=%s "
			  "message=\"%s\"",
			  s->cfg->schemas, err);
		SSL_CTX_free(ctx);
		return CLI_FAIL;
	}
	if (!load_keys(s, s->cfg, NULL)) {
		intake_cleanup(&s->intake);
		SSL_CTX_free(ctx);
		return CLI_FAIL;
	}
	if (console_init(&s->console) != GW_OK)
		fatalx("event=startup_failed reason=console_init");
	if (provider_init(pv, s->intake.rules[RULES_R4]) != GW_OK)
		fatalx("event=startup_failed reason=provider_init");
	pv->stu3 = s->intake.rules[RULES_STU3];
	for (size_t i = 0; org_routes[i].fn != NULL; i++)
		if (org_routes[i].fn == provider_handle &&
		    strchr(org_routes[i].path, '*') != NULL)
			org_routes[i].types = (const char *const *)pv->types;
	if ((s->base = event_base_new()) == NULL)
		fatalx("event=startup_failed reason=event_base");
	if (http_server_new(s->base, s->cfg, &s->srv) != GW_OK)
		fatalx("event=startup_failed reason=out_of_memory");
	s->api.srv = s->srv;
	s->api.org_routes = org_routes;
	s->api.store_ready = store_ready;
	s->api.store_arg = s;
	s->api.started = util_wall_ms() / 1000;
	s->api.to_xml = provider_to_xml;
	s->api.xml_arg = pv;
	if (http_server_listen(s->srv, ctx, org_routes, admin_routes, err,
			       sizeof(err)) != GW_OK) {
		log_warnx("event=startup_failed reason=listen message=\"%s\"",
			  err);
		goto done;
	}
	if (drop_privileges(s->cfg->user) != 0 || !open_store(s))
		goto done;
	{
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

		if (intake_workers_start(&s->intake, s->base,
					 ncpu < 1 ? 1 : (unsigned)ncpu) !=
		    GW_OK)
			log_warnx(
			    "event=intake_workers_failed fallback=inline");
		pv->store = s->store;
		if (provider_workers_start(
			pv, s->base, ncpu < 1 ? 1 : (unsigned)ncpu) != GW_OK)
			log_warnx("event=pull_workers_failed fallback=inline");
		/* The console's own threads: a slow page never waits on
		 * (or holds up) intake or pulls. */
		s->console.store = s->store;
		s->console.rules[0] = s->intake.rules[RULES_R4];
		s->console.rules[1] = s->intake.rules[RULES_STU3];
		s->console.kick = kick_delivery;
		s->console.kick_arg = s;
		if (console_workers_start(&s->console, s->base, 1) != GW_OK)
			log_warnx("event=console_workers_failed "
				  "console=unavailable");
	}
	s->ev_term = add_signal(s, SIGTERM);
	s->ev_int = add_signal(s, SIGINT);
	s->ev_hup = add_signal(s, SIGHUP);
	log_info(
	    "event=started version=%s organisation=%s environment=%s "
	    "port=%u admin_port=%u",
	    PZPGW_VERSION, s->cfg->ura, config_env_name(s->cfg->environment),
	    http_server_port(s->srv, false), http_server_port(s->srv, true));
	notify_ready(s);
	if (event_base_dispatch(s->base) == -1)
		log_warnx("event=loop_failed");
	else
		rc = CLI_OK;
done:
	/* Jobs still in the workers are answered or submitted to the store
	 * (which commits them below). */
	intake_workers_stop(&s->intake);
	/* Readers close before the store; answers are recorded first. */
	provider_workers_stop(pv);
	console_workers_stop(&s->console);
	if (s->deliver != NULL) {
		deliver_stop(s->deliver);
		deliver_free(s->deliver);
	}
	if (s->ev_store != NULL)
		event_free(s->ev_store);
	if (s->ev_prune != NULL)
		event_free(s->ev_prune);
	if (s->ev_watchdog != NULL)
		event_free(s->ev_watchdog);
	/* Commits every accept still queued; their callbacks answer or drop
	 * the requests still waiting, so the server must still exist. */
	store_free(s->store);
	if (s->store_lock >= 0)
		close(s->store_lock);
	sign_key_free(s->key);
	sign_trust_free(s->trust);
	/* event_free(NULL) is not a no-op in libevent. */
	if (s->ev_term != NULL)
		event_free(s->ev_term);
	if (s->ev_int != NULL)
		event_free(s->ev_int);
	if (s->ev_hup != NULL)
		event_free(s->ev_hup);
	http_server_free(s->srv);
	SSL_CTX_free(ctx);
	event_base_free(s->base);
	provider_cleanup(pv);
	api_cleanup(&s->api);
	intake_cleanup(&s->intake);
	console_cleanup(&s->console);
	return rc;
}

int
cli_serve(int argc, char **argv)
{
	struct serve s = {.path = CONFIG_DEFAULT_PATH, .store_lock = -1};
	int ch, rc;

	optind = 1;
	while ((ch = getopt(argc, argv, "c:d")) != -1) {
		switch (ch) {
		case 'c':
			s.path = optarg;
			break;
		case 'd':
			s.debug = true;
			break;
		default:
			return cli_usage("serve", "unknown option");
		}
	}
	if (optind != argc)
		return cli_usage("serve", "unexpected argument '%s'",
				 argv[optind]);
	if (config_load(s.path, print_config_error, NULL, &s.cfg) != GW_OK) {
		fprintf(stderr, "pzpgw serve: cannot start with %s\n", s.path);
		return CLI_FAIL;
	}
	apply_logging(&s);
	serve_node(s.cfg);
	(void)config_warnings(s.cfg, log_config_warning, NULL);
	/* A peer closing a connection must not kill the daemon. */
	signal(SIGPIPE, SIG_IGN);
	(void)sdnotify_init(&s.sd);
	rc = serve_run(&s);
	if (rc != CLI_OK)
		(void)sdnotify_send(&s.sd, "STATUS=exiting on an error: see "
					   "the log");
	sdnotify_cleanup(&s.sd);
	free_retired(&s);
	config_free(s.cfg);
	metrics_reset();
	return rc;
}
