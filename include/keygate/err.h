/* err.h - the one error type of keygate.
 *
 * Every fallible function returns kg_err (KG_OK == 0) and hands results back
 * through out-parameters. Each API dialect (keygate JSON, Bee, Avalanche
 * JSON-RPC, Elasticsearch) maps these to its own wire error in one place.
 */
#ifndef KEYGATE_ERR_H
#define KEYGATE_ERR_H

#define KG_ERR_LIST(X)                                                   \
	X(OK, "success")                                                 \
	X(ENOMEM, "out of memory")                                       \
	X(EINVAL, "invalid argument")                                    \
	X(EIO, "input/output error")                                     \
	X(ENOENT, "not found")                                           \
	X(EEXIST, "already exists")                                      \
	X(ERANGE, "value out of range")                                  \
	X(ETOOBIG, "too large")                                          \
	X(ESYNTAX, "syntax error")                                       \
	X(ECONFIG, "configuration error")                                \
	X(ESTORE, "store error")                                         \
	X(ENOCRED, "missing credential")                                 \
	X(EBADCRED, "invalid credential")                                \
	X(EEXPIRED, "credential expired")                                \
	X(EREVOKED, "credential revoked")                                \
	X(EFORBIDDEN, "access denied")                                   \
	X(ESCHEME, "no enabled scheme accepts this credential")          \
	X(ETHROTTLED, "too many attempts")                               \
	X(ESLOW, "needs a slow verification off the event loop")         \
	X(EUNAVAILABLE, "service unavailable")

enum kg_err {
#define KG_X(name, msg) KG_##name,
	KG_ERR_LIST(KG_X)
#undef KG_X
	KG__ERR_COUNT
};
typedef enum kg_err kg_err;

/* kg_strerror returns a static, human-readable description of err. */
const char *kg_strerror(kg_err err);

/* kg_errname returns the symbolic name ("EBADCRED") of err. */
const char *kg_errname(kg_err err);

#define KG_MUST_CHECK __attribute__((warn_unused_result))

#endif
