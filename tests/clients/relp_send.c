/*
 * relp_send: sends each line of stdin as one RELP syslog message with librelp, the library
 * behind rsyslog's omrelp, and exits 0 only once the server answered the session's close,
 * which RELP answers after every message before it (answers come in order).
 *
 *   relp_send HOST PORT [--window N] [--tls-lib gnutls|openssl] [--tls CA_FILE [CERT_FILE KEY_FILE]]
 *
 * TLS checks the server's certificate against CA_FILE ("certvalid": the chain, not the name).
 * librelp 1.11 with gnutls treats a session without a client certificate as anonymous TLS
 * (anonymous cipher suites only), so a server-authenticated session without a client
 * certificate needs `--tls-lib openssl`.
 *
 * Exit status: 0 all sent and the close answered; 1 usage; 2 a librelp call failed (its
 * name and code are printed on stderr).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librelp.h>

#define TRY(call)                                                         \
	do {                                                                  \
		relpRetVal r_ = (call);                                           \
		if (r_ != RELP_RET_OK) {                                          \
			fprintf(stderr, "relp_send: %s failed: %d\n", #call, (int)r_); \
			return 2;                                                     \
		}                                                                 \
	} while (0)

static void on_error(void *usr, char *object, char *msg, relpRetVal code)
{
	(void)usr;
	fprintf(stderr, "relp_send: librelp error %d on %s: %s\n", (int)code, object, msg);
}

/* librelp calls its debug printer unconditionally: it must be set, and prints nothing. */
static void quiet(char *fmt, ...)
{
	(void)fmt;
}

static void on_generic_error(char *object, char *msg, relpRetVal code)
{
	fprintf(stderr, "relp_send: librelp error %d on %s: %s\n", (int)code, object, msg);
}

int main(int argc, char *argv[])
{
	if (argc < 3) {
		fprintf(stderr, "usage: relp_send HOST PORT [--window N] [--tls-lib L] [--tls CA [CERT KEY]]\n");
		return 1;
	}
	char *host = argv[1], *port = argv[2];
	int window = 128;
	char *tls_lib = NULL;
	char *ca = NULL, *cert = NULL, *key = NULL;
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--window") && i + 1 < argc) {
			window = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--tls-lib") && i + 1 < argc) {
			tls_lib = argv[++i];
		} else if (!strcmp(argv[i], "--tls") && i + 1 < argc) {
			ca = argv[++i];
			if (i + 2 < argc && argv[i + 1][0] != '-') {
				cert = argv[++i];
				key = argv[++i];
			}
		} else {
			fprintf(stderr, "relp_send: unknown argument %s\n", argv[i]);
			return 1;
		}
	}

	relpEngine_t *engine = NULL;
	relpClt_t *clt = NULL;
	TRY(relpEngineConstruct(&engine));
	TRY(relpEngineSetDbgprint(engine, quiet));
	if (tls_lib != NULL)
		TRY(relpEngineSetTLSLibByName(engine, tls_lib));
	TRY(relpEngineSetOnErr(engine, on_error));
	TRY(relpEngineSetOnGenericErr(engine, on_generic_error));
	TRY(relpEngineSetEnableCmd(engine, (unsigned char *)"syslog", eRelpCmdState_Required));
	TRY(relpEngineCltConstruct(engine, &clt));
	TRY(relpCltSetTimeout(clt, 60));
	TRY(relpCltSetWindowSize(clt, window));
	if (ca != NULL) {
		TRY(relpCltEnableTLS(clt));
		TRY(relpCltSetAuthMode(clt, (char *)"certvalid"));
		TRY(relpCltSetCACert(clt, ca));
		if (cert != NULL) {
			TRY(relpCltSetOwnCert(clt, cert));
			TRY(relpCltSetPrivKey(clt, key));
		}
	}
	TRY(relpCltConnect(clt, 2 /* AF_INET */, (unsigned char *)port, (unsigned char *)host));

	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	long sent = 0;
	while ((n = getline(&line, &cap, stdin)) > 0) {
		if (line[n - 1] == '\n')
			n--;
		if (n == 0)
			continue;
		TRY(relpCltSendSyslog(clt, (unsigned char *)line, (size_t)n));
		sent++;
	}
	free(line);
	/* Sends `close` and waits for its answer, which follows every other answer. */
	TRY(relpEngineCltDestruct(engine, &clt));
	TRY(relpEngineDestruct(&engine));
	printf("%ld\n", sent);
	return 0;
}
