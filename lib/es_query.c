/* es_query.c - the query DSL of /_security/_query/api_key over stored key
 * documents: parse once (every refusal in ES's words), then match, sort and
 * page in memory.
 *
 * Field types follow ES's security index mapping: name, username, realm,
 * type and id are keywords (exact, case-sensitive unless case_insensitive);
 * creation, expiration and invalidation are dates (epoch ms); invalidated is
 * a boolean; metadata is a "flattened" field, so every leaf value is a
 * keyword (42 is "42") and ranges on it compare text. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "keygate/es_query.h"

#define DATE_FORMAT "strict_date_optional_time||epoch_millis"
#define METADATA_MAX_DEPTH 64 /* stored metadata is capped at 20 on the way in; this bounds the walk anyway */
#define DATE_MATH_MAX_OPS 8

enum kind { K_KEYWORD, K_DATE, K_BOOL, K_FLAT };

/* The query-level fields, the document keys they read and the index-level
 * names ES's messages use. */
static const struct field_def {
	const char *query_name;
	const char *doc_key;
	const char *index_name;
	enum kind kind;
} fields[] = {
	{ "id", "id", "_id", K_KEYWORD }, /* keygate also takes id outside an ids query */
	{ "type", "type", "runtime_key_type", K_KEYWORD },
	{ "name", "name", "name", K_KEYWORD },
	{ "username", "username", "creator.principal", K_KEYWORD },
	{ "realm_name", "realm", "creator.realm", K_KEYWORD },
	{ "creation", "creation", "creation_time", K_DATE },
	{ "expiration", "expiration", "expiration_time", K_DATE },
	{ "invalidated", "invalidated", "api_key_invalidated", K_BOOL },
	{ "invalidation", "invalidation", "invalidation_time", K_DATE },
	{ "metadata", "metadata", "metadata_flattened", K_FLAT },
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))
#define FIELD_ID 0
#define FIELD_CREATION 5

/* A field reference: which field, and for metadata the dotted sub-path. */
struct fref {
	const struct field_def *def;
	char *path; /* owned; NULL: the whole field (metadata itself: any leaf) */
	size_t pathlen;
};

/* A date as ES's date math reads it: an anchor (a time or "now") and
 * operations applied in order; rounding goes up for gt and lte. */
struct date_expr {
	bool is_now;
	int64_t anchor;
	int precision; /* unit of the anchor's last given field, for rounding up a plain date; 0: none */
	int nops;
	struct {
		char op; /* '+', '-', '/' */
		char unit;
		int64_t n;
	} ops[DATE_MATH_MAX_OPS];
};

/* A comparable value: text (keywords, flattened), or an integer (dates,
 * booleans as 0/1), or a date expression resolved at run time. */
struct val {
	bool is_date_expr;
	int64_t i;
	const char *s; /* borrowed from the request JSON, or NULL: then buf */
	size_t n;
	char buf[40];
	struct date_expr d;
};

static const char *val_s(const struct val *v)
{
	return v->s ? v->s : v->buf;
}

enum qtype { Q_ALL, Q_NONE, Q_BOOL, Q_TERM, Q_TERMS, Q_PREFIX, Q_WILDCARD, Q_RANGE, Q_EXISTS, Q_IDS, Q_SQS };

struct sqs_term {
	bool is_negated, is_prefix;
	struct val v; /* text; numbers and dates are parsed per field, leniently */
};

struct sort_probe;

struct node {
	enum qtype type;
	struct node *next_alloc; /* every node of a query, for freeing */
	struct fref f;
	bool is_ci;             /* case_insensitive */
	struct val v;           /* term, prefix, wildcard */
	struct val *vals;       /* terms, ids: sorted unless dates */
	size_t nvals;
	bool has_lo, has_hi, lo_incl, hi_incl; /* range */
	struct val lo, hi;
	struct node **must, **filter, **should, **must_not; /* bool */
	size_t nmust, nfilter, nshould, nmust_not;
	long msm; /* bool: should clauses required */
	struct fref *sqs_fields; /* simple_query_string */
	size_t nsqs_fields;
	struct sqs_term *sqs_terms;
	size_t nsqs_terms;
	bool sqs_is_and;
	struct sort_probe *probe; /* sorting: where a document's sort value goes */
};

struct sort_key {
	bool is_doc; /* _doc: the documents' order */
	bool is_desc;
	struct fref f;
};

struct kg_es_query {
	json_t *body; /* owned: the nodes borrow its strings */
	struct node *root;
	struct node *allocs;
	size_t nclauses;
	int64_t from, size;
	struct sort_key sort[KG_ES_QUERY_MAX_SORT];
	size_t nsort;
	bool is_sorted; /* the request named a sort: answers carry _sort */
	struct val after[KG_ES_QUERY_MAX_SORT];
	size_t nafter;
};

/* ---- refusals ---- */

static kg_err fail_v(struct kg_es_fail *f, const char *type, const char *fmt, va_list ap)
{
	kg_buf msg = { 0 };
	kg_err err = kg_buf_vprintf(&msg, fmt, ap);
	if (!err)
		err = kg_es_fail_set(f, 400, type, "%s", msg.p ? msg.p : "");
	kg_buf_free(&msg, false);
	return err;
}

__attribute__((format(printf, 2, 3))) static kg_err fail_arg(struct kg_es_fail *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kg_err err = fail_v(f, "illegal_argument_exception", fmt, ap);
	va_end(ap);
	return err;
}

__attribute__((format(printf, 2, 3))) static kg_err fail_parsing(struct kg_es_fail *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kg_err err = fail_v(f, "parsing_exception", fmt, ap);
	va_end(ap);
	return err;
}

/* ---- dates ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp + (mp < 10 ? 3 : -9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t unit_ms(char unit)
{
	switch (unit) {
	case 'w': return 7 * 86400000LL;
	case 'd': return 86400000LL;
	case 'h': case 'H': return 3600000LL;
	case 'm': return 60000LL;
	case 's': return 1000LL;
	}
	return 0;
}

/* Rounds t down to the start of its unit (UTC; weeks start on Monday). */
static int64_t round_down(int64_t t, char unit)
{
	int64_t days = floor_div(t, 86400000LL), y, m, d;
	switch (unit) {
	case 'y': civil_from_days(days, &y, &m, &d); return days_from_civil(y, 1, 1) * 86400000LL;
	case 'M': civil_from_days(days, &y, &m, &d); return days_from_civil(y, m, 1) * 86400000LL;
	case 'w': return (days - ((days + 3) - floor_div(days + 3, 7) * 7)) * 86400000LL; /* 1970-01-01 was a Thursday */
	}
	int64_t u = unit_ms(unit);
	return floor_div(t, u) * u;
}

static int64_t add_months(int64_t t, int64_t months)
{
	int64_t days = floor_div(t, 86400000LL), y, m, d;
	int64_t ms = t - days * 86400000LL;
	civil_from_days(days, &y, &m, &d);
	int64_t total = y * 12 + (m - 1) + months;
	y = floor_div(total, 12);
	m = total - y * 12 + 1;
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int64_t last = mdays[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
	if (d > last)
		d = last; /* Jan 31 + 1M is the last day of February, as java.time does */
	return days_from_civil(y, m, d) * 86400000LL + ms;
}

/* The end (last millisecond) of t's unit: for gt and lte, ES rounds up. */
static int64_t round_up(int64_t t, char unit)
{
	int64_t start = round_down(t, unit);
	if (unit == 'y')
		return add_months(start, 12) - 1;
	if (unit == 'M')
		return add_months(start, 1) - 1;
	return start + unit_ms(unit) - 1;
}

static int64_t date_resolve(const struct date_expr *d, int64_t now_ms, bool is_round_up)
{
	int64_t t = d->is_now ? now_ms : d->anchor;
	if (!d->is_now && d->nops == 0 && is_round_up && d->precision)
		return round_up(t, (char)d->precision);
	for (int i = 0; i < d->nops; i++) {
		char u = d->ops[i].unit;
		int64_t n = d->ops[i].op == '-' ? -d->ops[i].n : d->ops[i].n;
		if (d->ops[i].op == '/')
			t = is_round_up ? round_up(t, u) : round_down(t, u);
		else if (u == 'y')
			t = add_months(t, n * 12);
		else if (u == 'M')
			t = add_months(t, n);
		else
			t += n * unit_ms(u);
	}
	return t;
}

static bool take_digits(const char **p, const char *end, int min, int max, int64_t *out)
{
	int k = 0;
	int64_t v = 0;
	while (*p < end && k < max && isdigit((unsigned char)**p)) {
		v = v * 10 + (**p - '0');
		(*p)++;
		k++;
	}
	*out = v;
	return k >= min;
}

/* strict_date_optional_time: yyyy[-MM[-dd[THH[:mm[:ss[.SSS...]]]]]][Z|±HH[:]mm]. */
static bool parse_iso(const char *p, const char *end, int64_t *out, int *precision)
{
	int64_t y, mo = 1, d = 1, h = 0, mi = 0, s = 0, ms = 0, off = 0;
	int prec = 'y';
	if (!take_digits(&p, end, 4, 4, &y))
		return false;
	if (p < end && *p == '-') {
		p++;
		if (!take_digits(&p, end, 2, 2, &mo) || mo < 1 || mo > 12)
			return false;
		prec = 'M';
		if (p < end && *p == '-') {
			p++;
			if (!take_digits(&p, end, 2, 2, &d) || d < 1 || d > 31)
				return false;
			prec = 'd';
			if (p < end && *p == 'T') {
				p++;
				if (!take_digits(&p, end, 2, 2, &h) || h > 23)
					return false;
				prec = 'h';
				if (p < end && *p == ':') {
					p++;
					if (!take_digits(&p, end, 2, 2, &mi) || mi > 59)
						return false;
					prec = 'm';
					if (p < end && *p == ':') {
						p++;
						if (!take_digits(&p, end, 2, 2, &s) || s > 59)
							return false;
						prec = 's';
						if (p < end && (*p == '.' || *p == ',')) {
							p++;
							int64_t frac;
							const char *q = p;
							if (!take_digits(&p, end, 1, 9, &frac))
								return false;
							for (int k = (int)(p - q); k < 9; k++)
								frac *= 10;
							ms = frac / 1000000;
							prec = 0;
						}
					}
				}
				if (p < end && (*p == 'Z' || *p == '+' || *p == '-')) {
					if (*p == 'Z') {
						p++;
					} else {
						int sign = *p++ == '-' ? -1 : 1;
						int64_t oh, om = 0;
						if (!take_digits(&p, end, 2, 2, &oh) || oh > 18)
							return false;
						if (p < end && *p == ':')
							p++;
						if (p < end && !take_digits(&p, end, 2, 2, &om))
							return false;
						off = sign * (oh * 3600000 + om * 60000);
					}
				}
			}
		}
	}
	if (p != end)
		return false;
	*out = days_from_civil(y, mo, d) * 86400000LL + h * 3600000 + mi * 60000 + s * 1000 + ms - off;
	*precision = prec;
	return true;
}

/* A date string: ES's default format for these fields, then date math
 * ("now", "now-1d/d", "2026-01-01||+1M"). */
static bool parse_date_string(const char *s, size_t n, struct date_expr *d)
{
	memset(d, 0, sizeof(*d));
	const char *end = s + n, *math = NULL;
	if (n >= 3 && memcmp(s, "now", 3) == 0) {
		d->is_now = true;
		math = s + 3;
	} else {
		const char *bars = NULL;
		for (const char *p = s; p + 1 < end; p++)
			if (p[0] == '|' && p[1] == '|') {
				bars = p;
				break;
			}
		const char *dend = bars ? bars : end;
		if (!parse_iso(s, dend, &d->anchor, &d->precision)) {
			/* epoch_millis: digits, optionally negative; no overflow */
			const char *p = s;
			bool is_neg = p < dend && *p == '-';
			p += is_neg;
			if (p == dend || dend - p > 18)
				return false;
			int64_t v = 0;
			for (; p < dend; p++) {
				if (!isdigit((unsigned char)*p))
					return false;
				v = v * 10 + (*p - '0');
			}
			d->anchor = is_neg ? -v : v;
			d->precision = 0;
		}
		math = bars ? bars + 2 : end;
	}
	const char *p = math;
	while (p < end) {
		if (d->nops == DATE_MATH_MAX_OPS)
			return false;
		char op = *p++;
		int64_t k = 1;
		if (op != '+' && op != '-' && op != '/')
			return false;
		if (op != '/' && !take_digits(&p, end, 1, 9, &k))
			return false;
		if (p == end || !strchr("yMwdhHms", *p))
			return false;
		d->ops[d->nops].op = op;
		d->ops[d->nops].unit = *p++;
		d->ops[d->nops].n = k;
		d->nops++;
	}
	return true;
}

/* ---- values from the request ---- */

/* A JSON scalar as the text a keyword field compares with. */
static bool scalar_text(const json_t *j, struct val *v)
{
	memset(v, 0, sizeof(*v));
	if (json_is_string(j)) {
		v->s = json_string_value(j);
		v->n = json_string_length(j);
	} else if (json_is_integer(j)) {
		v->n = (size_t)snprintf(v->buf, sizeof(v->buf), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
	} else if (json_is_real(j)) {
		v->n = (size_t)snprintf(v->buf, sizeof(v->buf), "%.17g", json_real_value(j));
	} else if (json_is_boolean(j)) {
		v->n = (size_t)snprintf(v->buf, sizeof(v->buf), "%s", json_is_true(j) ? "true" : "false");
	} else {
		return false;
	}
	return true;
}

/* A request value for field kind k. */
static kg_err make_val(const json_t *j, const struct fref *fr, struct val *v, const char *what, struct kg_es_fail *f)
{
	memset(v, 0, sizeof(*v));
	if (json_is_null(j) || json_is_object(j) || json_is_array(j))
		return fail_arg(f, "[%s] value must be a string, a number or a boolean", what);
	switch (fr->def->kind) {
	case K_KEYWORD:
	case K_FLAT:
		scalar_text(j, v);
		return KG_OK;
	case K_BOOL:
		if (json_is_boolean(j)) {
			v->i = json_is_true(j);
			return KG_OK;
		}
		if (json_is_string(j)) {
			const char *s = json_string_value(j);
			if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0 || !s[0]) {
				v->i = strcmp(s, "true") == 0;
				return KG_OK;
			}
		}
		scalar_text(j, v);
		return fail_arg(f, "Can't parse boolean value [%s], expected [true] or [false]", val_s(v));
	case K_DATE:
		scalar_text(j, v); /* for the message; zeroes v, so first */
		v->is_date_expr = true;
		if (json_is_integer(j)) {
			v->d.anchor = json_integer_value(j);
			return KG_OK;
		}
		if (json_is_real(j) && json_real_value(j) == (double)(int64_t)json_real_value(j)) {
			v->d.anchor = (int64_t)json_real_value(j);
			return KG_OK;
		}
		if (json_is_string(j) && parse_date_string(val_s(v), v->n, &v->d))
			return KG_OK;
		return kg_es_fail_set(f, 400, "parse_exception", "failed to parse date field [%s] with format [" DATE_FORMAT "]",
		                      val_s(v));
	}
	return KG_EINVAL;
}

/* ---- fields ---- */

static kg_err resolve_field(const char *name, struct fref *fr, struct kg_es_fail *f)
{
	memset(fr, 0, sizeof(*fr));
	if (strchr(name, '*'))
		return fail_arg(f, "Field name pattern [%s] is not allowed for querying or aggregation", name);
	for (size_t i = 0; i < NFIELDS; i++) {
		size_t n = strlen(fields[i].query_name);
		if (strcmp(name, fields[i].query_name) == 0) {
			fr->def = &fields[i];
			return KG_OK;
		}
		if (fields[i].kind == K_FLAT && strncmp(name, fields[i].query_name, n) == 0 && name[n] == '.') {
			fr->def = &fields[i];
			fr->path = strdup(name + n + 1);
			fr->pathlen = strlen(name + n + 1);
			return fr->path ? KG_OK : KG_ENOMEM;
		}
	}
	return fail_arg(f, "Field [%s] is not allowed for querying or aggregation", name);
}

/* Calls fn on every value the document has for the field, until it returns
 * true. Flattened metadata gives every leaf under the path as text. */
typedef bool (*val_fn)(const struct node *q, const struct val *v, int64_t now);

static bool flat_walk(const json_t *j, char *path, size_t plen, size_t cap, const struct fref *fr, int depth,
                      const struct node *q, val_fn fn, int64_t now)
{
	if (depth > METADATA_MAX_DEPTH)
		return false;
	if (json_is_object(j)) {
		const char *k;
		json_t *c;
		json_object_foreach((json_t *)j, k, c) {
			size_t kl = strlen(k), np = 0;
			if (fr->path) { /* metadata itself takes any leaf: no path to follow */
				np = plen + (plen ? 1 : 0) + kl;
				if (np >= cap)
					continue; /* longer than the path the query names */
				if (plen)
					path[plen] = '.';
				memcpy(path + plen + (plen ? 1 : 0), k, kl);
			}
			if (flat_walk(c, path, np, cap, fr, depth + 1, q, fn, now))
				return true;
		}
		return false;
	}
	if (json_is_array(j)) {
		size_t i;
		json_t *c;
		json_array_foreach(j, i, c) {
			if (flat_walk(c, path, plen, cap, fr, depth + 1, q, fn, now))
				return true;
		}
		return false;
	}
	if (json_is_null(j))
		return false; /* flattened fields do not index null */
	if (fr->path && (plen != fr->pathlen || memcmp(path, fr->path, plen) != 0))
		return false;
	struct val v;
	return scalar_text(j, &v) && fn(q, &v, now);
}

static bool any_value(const json_t *doc, const struct fref *fr, const struct node *q, val_fn fn, int64_t now)
{
	const json_t *j = json_object_get(doc, fr->def->doc_key);
	struct val v;
	if (!j)
		return false;
	switch (fr->def->kind) {
	case K_KEYWORD:
		memset(&v, 0, sizeof(v));
		if (!json_is_string(j))
			return false;
		v.s = json_string_value(j);
		v.n = json_string_length(j);
		return fn(q, &v, now);
	case K_DATE:
		memset(&v, 0, sizeof(v));
		if (!json_is_integer(j))
			return false;
		v.i = json_integer_value(j);
		return fn(q, &v, now);
	case K_BOOL:
		memset(&v, 0, sizeof(v));
		if (!json_is_boolean(j))
			return false;
		v.i = json_is_true(j);
		return fn(q, &v, now);
	case K_FLAT: {
		/* a path of the document longer than the query's cannot match it */
		char path[512];
		size_t cap = fr->path ? (fr->pathlen + 1 < sizeof(path) ? fr->pathlen + 1 : 0) : sizeof(path);
		if (fr->path && cap == 0) {
			char *big = malloc(fr->pathlen + 1);
			if (!big)
				return false;
			bool r = flat_walk(j, big, 0, fr->pathlen + 1, fr, 0, q, fn, now);
			free(big);
			return r;
		}
		return flat_walk(j, path, 0, cap, fr, 0, q, fn, now);
	}
	}
	return false;
}

/* ---- comparing ---- */

static int cmp_text(const char *a, size_t an, const char *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);
	return c ? c : (an < bn ? -1 : an > bn);
}

static bool eq_text(const char *a, size_t an, const char *b, size_t bn, bool is_ci)
{
	if (an != bn)
		return false;
	if (!is_ci)
		return memcmp(a, b, an) == 0;
	for (size_t i = 0; i < an; i++)
		if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
			return false;
	return true;
}

static bool is_text_kind(enum kind k)
{
	return k == K_KEYWORD || k == K_FLAT;
}

/* Compares a document value with a request value of the same field:
 * texts bytewise, numbers numerically (dates resolved against now). */
static int cmp_val(const struct node *q, const struct val *docv, const struct val *qv, int64_t now, bool is_round_up)
{
	if (is_text_kind(q->f.def->kind))
		return cmp_text(val_s(docv), docv->n, val_s(qv), qv->n);
	int64_t b = qv->is_date_expr ? date_resolve(&qv->d, now, is_round_up) : qv->i;
	return docv->i < b ? -1 : docv->i > b;
}

static int cmp_sorted_val(const void *a, const void *b)
{
	const struct val *x = a, *y = b;
	if (x->s || x->n || y->s || y->n)
		return cmp_text(val_s(x), x->n, val_s(y), y->n);
	return x->i < y->i ? -1 : x->i > y->i;
}

/* '*' any run, '?' one byte, '\' escapes (Lucene's wildcard syntax). */
static bool wildcard_match(const char *p, size_t pn, const char *s, size_t sn, bool is_ci)
{
	size_t pi = 0, si = 0, star_p = (size_t)-1, star_s = 0;
	while (si < sn) {
		if (pi < pn && p[pi] == '*') {
			star_p = ++pi;
			star_s = si;
			continue;
		}
		if (pi < pn) {
			char c = p[pi];
			size_t adv = 1;
			bool is_any = c == '?';
			if (c == '\\' && pi + 1 < pn) {
				c = p[pi + 1];
				adv = 2;
			}
			if (is_any || (is_ci ? tolower((unsigned char)c) == tolower((unsigned char)s[si]) : c == s[si])) {
				pi += adv;
				si++;
				continue;
			}
		}
		if (star_p == (size_t)-1)
			return false;
		pi = star_p;
		si = ++star_s;
	}
	while (pi < pn && p[pi] == '*')
		pi++;
	return pi == pn;
}

/* ---- matching ---- */

static bool doc_matches(const struct node *q, const json_t *doc, int64_t now);

/* A date term matches its whole precision: ES runs term on a date as the
 * range [rounded down, rounded up], so "2026-01-01" is that whole day. */
static bool date_eq(const struct node *q, const struct val *docv, const struct val *qv, int64_t now)
{
	return cmp_val(q, docv, qv, now, false) >= 0 && cmp_val(q, docv, qv, now, true) <= 0;
}

static bool on_term(const struct node *q, const struct val *v, int64_t now)
{
	if (is_text_kind(q->f.def->kind))
		return eq_text(val_s(v), v->n, val_s(&q->v), q->v.n, q->is_ci);
	return q->f.def->kind == K_DATE ? date_eq(q, v, &q->v, now) : cmp_val(q, v, &q->v, now, false) == 0;
}

static bool on_terms(const struct node *q, const struct val *v, int64_t now)
{
	if (q->f.def->kind == K_DATE) {
		for (size_t i = 0; i < q->nvals; i++)
			if (date_eq(q, v, &q->vals[i], now))
				return true;
		return false;
	}
	return q->nvals && bsearch(v, q->vals, q->nvals, sizeof(*q->vals), cmp_sorted_val) != NULL;
}

static bool on_prefix(const struct node *q, const struct val *v, int64_t now)
{
	return v->n >= q->v.n && eq_text(val_s(v), q->v.n, val_s(&q->v), q->v.n, q->is_ci);
}

static bool on_wildcard(const struct node *q, const struct val *v, int64_t now)
{
	return wildcard_match(val_s(&q->v), q->v.n, val_s(v), v->n, q->is_ci);
}

static bool on_range(const struct node *q, const struct val *v, int64_t now)
{
	if (q->has_lo) {
		int c = cmp_val(q, v, &q->lo, now, !q->lo_incl); /* gt rounds up, gte down */
		if (c < 0 || (c == 0 && !q->lo_incl))
			return false;
	}
	if (q->has_hi) {
		int c = cmp_val(q, v, &q->hi, now, q->hi_incl); /* lte rounds up, lt down */
		if (c > 0 || (c == 0 && !q->hi_incl))
			return false;
	}
	return true;
}

static bool on_exists(const struct node *q, const struct val *v, int64_t now)
{
	return true;
}

/* simple_query_string: one term against one field's value, leniently typed. */
struct sqs_ctx {
	const struct sqs_term *t;
};

static bool sqs_term_on_field(const struct sqs_term *t, const struct fref *fr, const json_t *doc, int64_t now)
{
	struct node probe;
	memset(&probe, 0, sizeof(probe));
	probe.f = *fr;
	if (is_text_kind(fr->def->kind)) {
		probe.v = t->v;
		return any_value(doc, fr, &probe, t->is_prefix ? on_prefix : on_term, now);
	}
	if (t->is_prefix)
		return false;
	json_t *j = json_stringn(val_s(&t->v), t->v.n);
	struct kg_es_fail f = { 0 };
	bool ok = j && make_val(j, fr, &probe.v, "simple_query_string", &f) == KG_OK;
	kg_es_fail_free(&f);
	json_decref(j);
	return ok && any_value(doc, fr, &probe, on_term, now); /* lenient: a term that is no date or boolean matches nothing */
}

static bool sqs_matches(const struct node *q, const json_t *doc, int64_t now)
{
	if (q->nsqs_terms == 0 || q->nsqs_fields == 0)
		return false;
	for (size_t i = 0; i < q->nsqs_terms; i++) {
		const struct sqs_term *t = &q->sqs_terms[i];
		bool hit = false;
		for (size_t k = 0; k < q->nsqs_fields && !hit; k++)
			hit = sqs_term_on_field(t, &q->sqs_fields[k], doc, now);
		bool clause = t->is_negated ? !hit : hit;
		if (q->sqs_is_and && !clause)
			return false;
		if (!q->sqs_is_and && clause)
			return true;
	}
	return q->sqs_is_and;
}

static bool doc_matches(const struct node *q, const json_t *doc, int64_t now)
{
	switch (q->type) {
	case Q_ALL: return true;
	case Q_NONE: return false;
	case Q_TERM: return any_value(doc, &q->f, q, on_term, now);
	case Q_TERMS: return any_value(doc, &q->f, q, on_terms, now);
	case Q_PREFIX: return any_value(doc, &q->f, q, on_prefix, now);
	case Q_WILDCARD: return any_value(doc, &q->f, q, on_wildcard, now);
	case Q_RANGE: return any_value(doc, &q->f, q, on_range, now);
	case Q_EXISTS: return any_value(doc, &q->f, q, on_exists, now);
	case Q_IDS: return any_value(doc, &q->f, q, on_terms, now);
	case Q_SQS: return sqs_matches(q, doc, now);
	case Q_BOOL: {
		for (size_t i = 0; i < q->nmust; i++)
			if (!doc_matches(q->must[i], doc, now))
				return false;
		for (size_t i = 0; i < q->nfilter; i++)
			if (!doc_matches(q->filter[i], doc, now))
				return false;
		for (size_t i = 0; i < q->nmust_not; i++)
			if (doc_matches(q->must_not[i], doc, now))
				return false;
		if (q->msm > 0) {
			long hits = 0;
			for (size_t i = 0; i < q->nshould && hits < q->msm; i++)
				hits += doc_matches(q->should[i], doc, now);
			return hits >= q->msm;
		}
		return true;
	}
	}
	return false;
}

/* ---- parsing queries ---- */

struct parser {
	kg_es_query *q;
	struct kg_es_fail *f;
};

static kg_err new_node(struct parser *ps, enum qtype type, struct node **out)
{
	if (ps->q->nclauses >= KG_ES_QUERY_MAX_CLAUSES)
		return kg_es_fail_set(ps->f, 400, "too_many_nested_clauses",
		                      "Query contains too many nested clauses; maxClauseCount is set to %d",
		                      KG_ES_QUERY_MAX_CLAUSES);
	struct node *n = calloc(1, sizeof(*n));
	if (!n)
		return KG_ENOMEM;
	n->type = type;
	n->next_alloc = ps->q->allocs;
	ps->q->allocs = n;
	ps->q->nclauses++;
	*out = n;
	return KG_OK;
}

static kg_err parse_query(struct parser *ps, const json_t *j, int depth, struct node **out);

/* Query names ES knows but does not allow for API keys: refused as ES does,
 * not as unknown. */
static const char *const es_other_queries[] = {
	"boosting", "combined_fields", "constant_score", "dis_max", "distance_feature", "function_score", "fuzzy",
	"geo_bounding_box", "geo_distance", "geo_grid", "geo_polygon", "geo_shape", "has_child", "has_parent",
	"intervals", "knn", "match_bool_prefix", "match_none", "match_phrase", "match_phrase_prefix",
	"more_like_this", "multi_match", "nested", "parent_id", "percolate", "pinned", "query_string",
	"rank_feature", "regexp", "rule", "script", "script_score", "semantic", "shape", "span_containing",
	"span_field_masking", "span_first", "span_multi", "span_near", "span_not", "span_or", "span_term",
	"span_within", "sparse_vector", "terms_set", "text_expansion", "weighted_tokens", "wrapper",
};

/* {"<type>": {"<field>": value-or-{"value": ..., options}}}: the field and
 * its value, options checked against allowed. */
static kg_err field_clause(struct parser *ps, const char *type, const json_t *body, const char *value_key,
                           const char *const *allowed, const char **field, const json_t **value, bool *is_ci)
{
	*field = NULL;
	*value = NULL;
	*is_ci = false;
	if (!json_is_object(body))
		return fail_parsing(ps->f, "[%s] query malformed, no start_object after query name", type);
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)body, k, v) {
		if (strcmp(k, "boost") == 0 || strcmp(k, "_name") == 0)
			continue;
		if (*field)
			return kg_es_fail_set(ps->f, 400, "parsing_exception",
			                      "[%s] query doesn't support multiple fields, found [%s] and [%s]", type, *field, k);
		*field = k;
		if (!json_is_object(v)) {
			*value = v;
			continue;
		}
		const char *ok;
		json_t *ov;
		json_object_foreach(v, ok, ov) {
			bool is_known = strcmp(ok, "boost") == 0 || strcmp(ok, "_name") == 0;
			for (const char *const *a = allowed; *a && !is_known; a++)
				is_known = strcmp(ok, *a) == 0;
			if (strcmp(ok, value_key) == 0) {
				*value = ov;
			} else if (strcmp(ok, "case_insensitive") == 0 && is_known) {
				if (!json_is_boolean(ov))
					return fail_parsing(ps->f, "[%s] query [case_insensitive] must be a boolean", type);
				*is_ci = json_is_true(ov);
			} else if (!is_known) {
				return kg_es_fail_set(ps->f, 400, "parsing_exception", "[%s] query does not support [%s]", type, ok);
			}
		}
	}
	if (!*field)
		return fail_parsing(ps->f, "[%s] query doesn't support an empty field", type);
	if (!*value || json_is_null(*value))
		return fail_arg(ps->f, "[%s] query requires a non-null value", type);
	return KG_OK;
}

static kg_err text_only(struct parser *ps, const char *type, const struct fref *fr)
{
	if (is_text_kind(fr->def->kind))
		return KG_OK;
	return kg_es_fail_set(ps->f, 400, "query_shard_exception",
	                      "Can only use %s queries on keyword, text and wildcard fields - not on [%s] which is of type [%s]",
	                      type, fr->def->index_name, fr->def->kind == K_DATE ? "date" : "boolean");
}

static kg_err parse_leaf(struct parser *ps, const char *type, const json_t *body, struct node *n)
{
	static const char *const term_opts[] = { "case_insensitive", NULL };
	static const char *const wild_opts[] = { "case_insensitive", "rewrite", NULL };
	static const char *const match_opts[] = { "operator", "analyzer", "fuzziness", "prefix_length", "max_expansions",
		                                  "fuzzy_transpositions", "lenient", "zero_terms_query",
		                                  "auto_generate_synonyms_phrase_query", "minimum_should_match",
		                                  "fuzzy_rewrite", NULL };
	const char *field;
	const json_t *value;
	bool is_ci;
	kg_err err;
	bool is_match = strcmp(type, "match") == 0, is_wild = strcmp(type, "wildcard") == 0;
	(void)is_wild;
	err = field_clause(ps, type, body, is_match ? "query" : "value",
	                   is_match ? match_opts : (is_wild || strcmp(type, "prefix") == 0) ? wild_opts : term_opts,
	                   &field, &value, &is_ci);
	if (err)
		return err;
	if ((err = resolve_field(field, &n->f, ps->f)))
		return err;
	n->is_ci = is_ci;
	if (n->type == Q_PREFIX || n->type == Q_WILDCARD) {
		if ((err = text_only(ps, type, &n->f)))
			return err;
		if (!value || !json_is_string(value))
			return fail_arg(ps->f, "[%s] query requires a string value", type);
		if (json_string_length(value) > KG_ES_QUERY_MAX_PATTERN)
			return kg_es_fail_set(ps->f, 400, "illegal_argument_exception",
			                      "[%s] pattern is longer than keygate's limit of [%d] bytes", type,
			                      KG_ES_QUERY_MAX_PATTERN);
	}
	return make_val(value, &n->f, &n->v, type, ps->f);
}

static kg_err parse_terms(struct parser *ps, const json_t *body, struct node *n, bool is_ids)
{
	const char *field = NULL;
	const json_t *list = NULL;
	kg_err err;
	if (!json_is_object(body))
		return fail_parsing(ps->f, "[%s] query malformed, no start_object after query name", is_ids ? "ids" : "terms");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)body, k, v) {
		if (strcmp(k, "boost") == 0 || strcmp(k, "_name") == 0)
			continue;
		if (is_ids) {
			if (strcmp(k, "values") != 0)
				return kg_es_fail_set(ps->f, 400, "parsing_exception", "[ids] query does not support [%s]", k);
			list = v;
			continue;
		}
		if (field)
			return kg_es_fail_set(ps->f, 400, "parsing_exception",
			                      "[terms] query does not support multiple fields, found [%s] and [%s]", field, k);
		field = k;
		list = v;
	}
	if (is_ids) {
		n->f.def = &fields[FIELD_ID];
		if (!list)
			return KG_OK; /* no values: matches nothing */
		if (!json_is_array(list))
			return fail_parsing(ps->f, "[ids] query malformed, [values] must be an array");
	} else {
		if (!field)
			return fail_parsing(ps->f, "[terms] query requires a field");
		if (json_is_object(list))
			return fail_arg(ps->f, "terms query with terms lookup is not currently supported in this context");
		if (!json_is_array(list))
			return kg_es_fail_set(ps->f, 400, "parsing_exception",
			                      "[terms] query does not support [%s]", field);
		if ((err = resolve_field(field, &n->f, ps->f)))
			return err;
	}
	size_t cnt = json_array_size(list);
	if (cnt > KG_ES_QUERY_MAX_TERMS)
		return kg_es_fail_set(ps->f, 400, "illegal_argument_exception",
		                      "The number of terms [%zu] used in the Terms Query request has exceeded the allowed "
		                      "maximum of [%d]. This maximum can be set by changing the [index.max_terms_count] index "
		                      "level setting.",
		                      cnt, KG_ES_QUERY_MAX_TERMS);
	n->vals = calloc(cnt ? cnt : 1, sizeof(*n->vals));
	if (!n->vals)
		return KG_ENOMEM;
	for (size_t i = 0; i < cnt; i++) {
		const json_t *e = json_array_get(list, i);
		if (is_ids ? !json_is_string(e) : false)
			return fail_parsing(ps->f, "[ids] query values must be strings");
		if ((err = make_val(e, &n->f, &n->vals[i], is_ids ? "ids" : "terms", ps->f)))
			return err;
		n->nvals++;
	}
	if (n->f.def->kind != K_DATE)
		qsort(n->vals, n->nvals, sizeof(*n->vals), cmp_sorted_val);
	return KG_OK;
}

static kg_err parse_range(struct parser *ps, const json_t *body, struct node *n)
{
	const char *field = NULL;
	const json_t *opts = NULL;
	kg_err err;
	if (!json_is_object(body))
		return fail_parsing(ps->f, "[range] query malformed, no start_object after query name");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)body, k, v) {
		if (strcmp(k, "boost") == 0 || strcmp(k, "_name") == 0)
			continue;
		if (field)
			return kg_es_fail_set(ps->f, 400, "parsing_exception",
			                      "[range] query doesn't support multiple fields, found [%s] and [%s]", field, k);
		field = k;
		opts = v;
	}
	if (!field || !json_is_object(opts))
		return fail_parsing(ps->f, "[range] query malformed, no start_object after query name");
	if (json_object_get(opts, "relation"))
		return fail_arg(ps->f, "range query with relation is not currently supported in this context");
	if ((err = resolve_field(field, &n->f, ps->f)))
		return err;
	json_object_foreach((json_t *)opts, k, v) {
		struct val *b;
		if (strcmp(k, "boost") == 0 || strcmp(k, "_name") == 0)
			continue;
		if (strcmp(k, "format") == 0 || strcmp(k, "time_zone") == 0)
			return kg_es_fail_set(ps->f, 400, "illegal_argument_exception",
			                      "[range] query option [%s] is not supported by keygate (dates are epoch "
			                      "milliseconds or " DATE_FORMAT " in UTC)", k);
		bool is_lo = strcmp(k, "gt") == 0 || strcmp(k, "gte") == 0;
		bool is_hi = strcmp(k, "lt") == 0 || strcmp(k, "lte") == 0;
		if (!is_lo && !is_hi)
			return kg_es_fail_set(ps->f, 400, "parsing_exception", "[range] query does not support [%s]", k);
		if (json_is_null(v))
			continue; /* ES: a null bound is no bound */
		b = is_lo ? &n->lo : &n->hi;
		if ((err = make_val(v, &n->f, b, "range", ps->f)))
			return err;
		if (is_lo) {
			n->has_lo = true;
			n->lo_incl = k[2] == 'e';
		} else {
			n->has_hi = true;
			n->hi_incl = k[2] == 'e';
		}
	}
	return KG_OK;
}

static kg_err parse_exists(struct parser *ps, const json_t *body, struct node *n)
{
	if (!json_is_object(body))
		return fail_parsing(ps->f, "[exists] query malformed, no start_object after query name");
	const char *k;
	json_t *v;
	const json_t *fv = NULL;
	json_object_foreach((json_t *)body, k, v) {
		if (strcmp(k, "field") == 0)
			fv = v;
		else if (strcmp(k, "boost") != 0 && strcmp(k, "_name") != 0)
			return kg_es_fail_set(ps->f, 400, "parsing_exception", "[exists] query does not support [%s]", k);
	}
	if (!json_is_string(fv))
		return fail_parsing(ps->f, "[exists] must be provided with a [field]");
	return resolve_field(json_string_value(fv), &n->f, ps->f);
}

/* minimum_should_match: an integer, "N", "-N", "N%" or "-N%" of the should clauses. */
static kg_err parse_msm(struct parser *ps, const json_t *j, size_t nshould, long *out)
{
	char buf[32];
	const char *s;
	if (json_is_integer(j)) {
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
		s = buf;
	} else if (json_is_string(j)) {
		s = json_string_value(j);
	} else {
		return fail_parsing(ps->f, "[bool] query [minimum_should_match] must be a number or a string");
	}
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	bool is_pct = *end == '%';
	if (end == s || errno || (is_pct ? end[1] != '\0' : *end != '\0') || v < -1000000 || v > 1000000)
		return kg_es_fail_set(ps->f, 400, "illegal_argument_exception",
		                      "keygate reads [minimum_should_match] as N, -N, N%% or -N%%, not [%s]", s);
	long long count = (long long)nshould, r;
	if (is_pct) {
		long long part = count * (v < 0 ? -v : v) / 100;
		r = v < 0 ? count - part : part;
	} else {
		r = v < 0 ? count + v : v;
	}
	*out = r < 0 ? 0 : (long)r;
	return KG_OK;
}

static kg_err parse_clauses(struct parser *ps, const json_t *v, int depth, struct node ***arr, size_t *n)
{
	size_t cnt = json_is_array(v) ? json_array_size(v) : 1;
	kg_err err;
	if (!json_is_array(v) && !json_is_object(v))
		return fail_parsing(ps->f, "[bool] query malformed, clauses must be objects or arrays");
	if (cnt > KG_ES_QUERY_MAX_CLAUSES)
		return kg_es_fail_set(ps->f, 400, "too_many_nested_clauses",
		                      "Query contains too many nested clauses; maxClauseCount is set to %d",
		                      KG_ES_QUERY_MAX_CLAUSES);
	struct node **grown = realloc(*arr, (*n + cnt + 1) * sizeof(**arr));
	if (!grown)
		return KG_ENOMEM;
	*arr = grown;
	for (size_t i = 0; i < cnt; i++) {
		const json_t *c = json_is_array(v) ? json_array_get(v, i) : v;
		if ((err = parse_query(ps, c, depth + 1, &(*arr)[*n])))
			return err;
		(*n)++;
	}
	return KG_OK;
}

static kg_err parse_bool(struct parser *ps, const json_t *body, int depth, struct node *n)
{
	const json_t *msm = NULL;
	kg_err err;
	if (!json_is_object(body))
		return fail_parsing(ps->f, "[bool] query malformed, no start_object after query name");
	if (depth >= KG_ES_QUERY_MAX_DEPTH)
		return kg_es_fail_set(ps->f, 400, "illegal_argument_exception",
		                      "The nested depth of the query exceeds the maximum nested depth for queries of [%d]",
		                      KG_ES_QUERY_MAX_DEPTH);
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)body, k, v) {
		if (strcmp(k, "must") == 0)
			err = parse_clauses(ps, v, depth, &n->must, &n->nmust);
		else if (strcmp(k, "filter") == 0)
			err = parse_clauses(ps, v, depth, &n->filter, &n->nfilter);
		else if (strcmp(k, "should") == 0)
			err = parse_clauses(ps, v, depth, &n->should, &n->nshould);
		else if (strcmp(k, "must_not") == 0 || strcmp(k, "mustNot") == 0)
			err = parse_clauses(ps, v, depth, &n->must_not, &n->nmust_not);
		else if (strcmp(k, "minimum_should_match") == 0)
			msm = v, err = KG_OK;
		else if (strcmp(k, "boost") == 0 || strcmp(k, "_name") == 0 || strcmp(k, "adjust_pure_negative") == 0)
			err = KG_OK;
		else
			err = kg_es_fail_set(ps->f, 400, "parsing_exception", "[bool] query does not support [%s]", k);
		if (err)
			return err;
	}
	/* ES: with no must or filter clause, one should clause must match */
	n->msm = (n->nshould && !n->nmust && !n->nfilter) ? 1 : 0;
	if (msm && !json_is_null(msm) && (err = parse_msm(ps, msm, n->nshould, &n->msm)))
		return err;
	if (n->nshould == 0)
		n->msm = 0; /* Lucene ignores minimum_should_match without should clauses */
	if (n->nshould && (size_t)n->msm > n->nshould)
		n->type = Q_NONE; /* asks more should clauses than there are: ES matches nothing */
	return KG_OK;
}

/* simple_query_string, the subset keygate reads: whitespace-separated terms,
 * "quoted phrases", a trailing * for a prefix, a leading - to negate;
 * default_operator or|and; fields (patterns allowed, unknown ones ignored). */
static kg_err parse_sqs(struct parser *ps, const json_t *body, struct node *n)
{
	const json_t *text = NULL, *flds = NULL;
	kg_err err;
	if (!json_is_object(body))
		return fail_parsing(ps->f, "[simple_query_string] query malformed, no start_object after query name");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)body, k, v) {
		if (strcmp(k, "query") == 0) {
			text = v;
		} else if (strcmp(k, "fields") == 0) {
			flds = v;
		} else if (strcmp(k, "default_operator") == 0) {
			const char *op = json_string_value(v);
			if (!op || (strcasecmp(op, "or") != 0 && strcasecmp(op, "and") != 0))
				return kg_es_fail_set(ps->f, 400, "illegal_argument_exception", "operator needs to be either [and] or [or], but was [%s]",
				                      op ? op : "");
			n->sqs_is_and = strcasecmp(op, "and") == 0;
		} else if (strcmp(k, "boost") != 0 && strcmp(k, "_name") != 0 && strcmp(k, "lenient") != 0 &&
		           strcmp(k, "analyze_wildcard") != 0) {
			return kg_es_fail_set(ps->f, 400, "parsing_exception",
			                      "[simple_query_string] query does not support [%s] (keygate reads query, fields, "
			                      "default_operator)", k);
		}
	}
	if (!json_is_string(text))
		return fail_parsing(ps->f, "[simple_query_string] query text missing");
	/* fields: every allowed field when none is named, as ES does ("*") */
	size_t nf = flds ? json_array_size(flds) : 0;
	if (flds && !json_is_array(flds))
		return fail_parsing(ps->f, "[simple_query_string] query [fields] must be an array");
	if (nf > KG_ES_QUERY_MAX_CLAUSES)
		return fail_arg(ps->f, "[simple_query_string] names too many fields");
	n->sqs_fields = calloc(NFIELDS * (nf ? nf : 1) + 1, sizeof(*n->sqs_fields));
	if (!n->sqs_fields)
		return KG_ENOMEM;
	for (size_t i = 0; i < (nf ? nf : 1); i++) {
		const char *pat = nf ? json_string_value(json_array_get(flds, i)) : "*";
		if (!pat)
			return fail_parsing(ps->f, "[simple_query_string] query [fields] must be strings");
		char pbuf[512];
		size_t pl = strcspn(pat, "^"); /* a boost suffix: ignored */
		if (pl >= sizeof(pbuf))
			continue;
		memcpy(pbuf, pat, pl);
		pbuf[pl] = '\0';
		if (strchr(pbuf, '*')) {
			for (size_t f = 0; f < NFIELDS; f++) {
				const char *qn = fields[f].query_name;
				if (f != FIELD_ID && wildcard_match(pbuf, pl, qn, strlen(qn), false))
					n->sqs_fields[n->nsqs_fields++].def = &fields[f];
			}
		} else {
			struct fref fr;
			struct kg_es_fail ignore = { 0 };
			err = resolve_field(pbuf, &fr, &ignore);
			kg_es_fail_free(&ignore);
			if (err == KG_ENOMEM)
				return err;
			if (!err)
				n->sqs_fields[n->nsqs_fields++] = fr; /* unknown fields are ignored, as ES does */
		}
	}
	/* the terms */
	const char *s = json_string_value(text), *end = s + json_string_length(text);
	size_t cap = 0;
	while (s < end) {
		while (s < end && isspace((unsigned char)*s))
			s++;
		if (s == end)
			break;
		if (n->nsqs_terms == cap) {
			if (cap >= KG_ES_QUERY_MAX_CLAUSES)
				return kg_es_fail_set(ps->f, 400, "too_many_nested_clauses",
				                      "Query contains too many nested clauses; maxClauseCount is set to %d",
				                      KG_ES_QUERY_MAX_CLAUSES);
			cap = cap ? cap * 2 : 8;
			struct sqs_term *g = realloc(n->sqs_terms, cap * sizeof(*g));
			if (!g)
				return KG_ENOMEM;
			n->sqs_terms = g;
		}
		struct sqs_term *t = &n->sqs_terms[n->nsqs_terms];
		memset(t, 0, sizeof(*t));
		if (*s == '-' && s + 1 < end && !isspace((unsigned char)s[1])) {
			t->is_negated = true;
			s++;
		}
		const char *w = s;
		if (*s == '"') {
			w = ++s;
			while (s < end && *s != '"')
				s++;
			t->v.s = w;
			t->v.n = (size_t)(s - w);
			if (s < end)
				s++;
		} else {
			while (s < end && !isspace((unsigned char)*s))
				s++;
			t->v.s = w;
			t->v.n = (size_t)(s - w);
			if (t->v.n > 0 && w[t->v.n - 1] == '*') {
				t->is_prefix = true;
				t->v.n--;
			}
		}
		if (t->v.n == 0 && !t->is_prefix)
			continue; /* "" */
		n->nsqs_terms++;
	}
	/* text values borrowed from the body: not NUL-terminated, so keep to (s, n) */
	return KG_OK;
}

static kg_err parse_query(struct parser *ps, const json_t *j, int depth, struct node **out)
{
	kg_err err;
	*out = NULL;
	if (!json_is_object(j))
		return fail_parsing(ps->f, "[_na] query malformed, must start with start_object");
	if (json_object_size(j) == 0)
		return new_node(ps, Q_ALL, out); /* {} is match_all, as the query API key docs show */
	if (json_object_size(j) > 1) {
		void *it = json_object_iter((json_t *)j);
		const char *first = json_object_iter_key(it);
		const char *second = json_object_iter_key(json_object_iter_next((json_t *)j, it));
		return kg_es_fail_set(ps->f, 400, "parsing_exception",
		                      "[%s] malformed query, expected [END_OBJECT] but found [FIELD_NAME] ([%s])", first,
		                      second);
	}
	void *it = json_object_iter((json_t *)j);
	const char *type = json_object_iter_key(it);
	const json_t *body = json_object_iter_value(it);
	static const struct {
		const char *name;
		enum qtype t;
	} types[] = {
		{ "bool", Q_BOOL }, { "match_all", Q_ALL }, { "term", Q_TERM }, { "terms", Q_TERMS },
		{ "match", Q_TERM }, { "prefix", Q_PREFIX }, { "wildcard", Q_WILDCARD }, { "range", Q_RANGE },
		{ "exists", Q_EXISTS }, { "ids", Q_IDS }, { "simple_query_string", Q_SQS },
	};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (strcmp(type, types[i].name) != 0)
			continue;
		struct node *n;
		if ((err = new_node(ps, types[i].t, &n)))
			return err;
		*out = n;
		switch (types[i].t) {
		case Q_BOOL: return parse_bool(ps, body, depth, n);
		case Q_ALL:
			if (!json_is_object(body))
				return fail_parsing(ps->f, "[match_all] query malformed, no start_object after query name");
			return KG_OK;
		case Q_TERMS: return parse_terms(ps, body, n, false);
		case Q_IDS: return parse_terms(ps, body, n, true);
		case Q_RANGE: return parse_range(ps, body, n);
		case Q_EXISTS: return parse_exists(ps, body, n);
		case Q_SQS: return parse_sqs(ps, body, n);
		default: return parse_leaf(ps, type, body, n);
		}
	}
	for (size_t i = 0; i < sizeof(es_other_queries) / sizeof(es_other_queries[0]); i++)
		if (strcmp(type, es_other_queries[i]) == 0)
			return fail_arg(ps->f, "Query type [%s] is not currently supported in this context", type);
	return kg_es_fail_set(ps->f, 400, "parsing_exception", "unknown query [%s]", type);
}

/* ---- the request body ---- */

/* from and size: ES's declareInt takes numbers and strings of digits. */
static kg_err parse_int(struct parser *ps, const json_t *v, const char *name, int64_t *out)
{
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		if (i < INT32_MIN || i > INT32_MAX)
			goto bad;
		*out = i;
		return KG_OK;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		errno = 0;
		long long i = strtoll(s, &end, 10);
		if (end == s || *end || errno || i < INT32_MIN || i > INT32_MAX)
			goto bad;
		*out = i;
		return KG_OK;
	}
bad:
	return kg_es_fail_set(ps->f, 400, "x_content_parse_exception",
	                      "[query_api_key_request_payload] failed to parse field [%s]", name);
}

static kg_err parse_sort_key(struct parser *ps, const json_t *e, struct sort_key *k)
{
	const char *name;
	const json_t *opt = NULL;
	kg_err err;
	memset(k, 0, sizeof(*k));
	if (json_is_string(e)) {
		name = json_string_value(e);
	} else if (json_is_object(e) && json_object_size(e) == 1) {
		void *it = json_object_iter((json_t *)e);
		name = json_object_iter_key(it);
		opt = json_object_iter_value(it);
	} else {
		return fail_arg(ps->f, "mal-formatted sort object");
	}
	if (opt) {
		const char *order = NULL;
		if (json_is_string(opt)) {
			order = json_string_value(opt);
		} else if (json_is_object(opt)) {
			const char *ok;
			json_t *ov;
			json_object_foreach((json_t *)opt, ok, ov) {
				if (strcmp(ok, "order") == 0) {
					order = json_string_value(ov);
					if (!order)
						return fail_arg(ps->f, "[sort] order must be a string");
				} else if (strcmp(ok, "nested") == 0 || strcmp(ok, "nested_path") == 0 ||
				           strcmp(ok, "nested_filter") == 0) {
					return fail_arg(ps->f, "nested sorting is not currently supported in this context");
				} else if (strcmp(ok, "unmapped_type") != 0 && strcmp(ok, "mode") != 0) {
					return kg_es_fail_set(ps->f, 400, "parsing_exception", "[field_sort] unknown field [%s]", ok);
				}
			}
		} else {
			return fail_arg(ps->f, "mal-formatted sort object");
		}
		if (order && strcasecmp(order, "desc") == 0)
			k->is_desc = true;
		else if (order && strcasecmp(order, "asc") != 0)
			return fail_arg(ps->f, "Unknown SortOrder [%s]", order);
	}
	if (strcmp(name, "_doc") == 0) {
		k->is_doc = true;
		return KG_OK;
	}
	if ((err = resolve_field(name, &k->f, ps->f)))
		return err;
	return KG_OK;
}

static kg_err parse_body(struct parser *ps, const json_t *body)
{
	kg_es_query *q = ps->q;
	kg_err err;
	const json_t *after = NULL;
	bool has_from = false;
	const char *k;
	json_t *v;
	if (!json_is_object(body))
		return kg_es_fail_set(ps->f, 400, "x_content_parse_exception",
		                      "[query_api_key_request_payload] Expected START_OBJECT but found [%s]",
		                      json_is_array(body) ? "START_ARRAY" : "VALUE");
	json_object_foreach((json_t *)body, k, v) {
		if (strcmp(k, "query") == 0) {
			if (!json_is_object(v))
				return kg_es_fail_set(ps->f, 400, "x_content_parse_exception",
				                      "[query_api_key_request_payload] failed to parse field [query]");
			if ((err = parse_query(ps, v, 0, &q->root)))
				return err;
		} else if (strcmp(k, "from") == 0) {
			if ((err = parse_int(ps, v, k, &q->from)))
				return err;
			has_from = true;
		} else if (strcmp(k, "size") == 0) {
			if ((err = parse_int(ps, v, k, &q->size)))
				return err;
		} else if (strcmp(k, "sort") == 0) {
			size_t n = json_is_array(v) ? json_array_size(v) : 1;
			if (n > KG_ES_QUERY_MAX_SORT)
				return kg_es_fail_set(ps->f, 400, "illegal_argument_exception",
				                      "keygate sorts by at most [%d] fields", KG_ES_QUERY_MAX_SORT);
			for (size_t i = 0; i < n; i++) {
				if ((err = parse_sort_key(ps, json_is_array(v) ? json_array_get(v, i) : v, &q->sort[q->nsort])))
					return err;
				q->nsort++;
			}
			q->is_sorted = q->nsort > 0;
		} else if (strcmp(k, "search_after") == 0) {
			if (!json_is_array(v))
				return kg_es_fail_set(ps->f, 400, "x_content_parse_exception",
				                      "[query_api_key_request_payload] failed to parse field [search_after]");
			after = v;
		} else if (strcmp(k, "aggs") == 0 || strcmp(k, "aggregations") == 0) {
			return kg_es_fail_set(ps->f, 400, "illegal_argument_exception",
			                      "keygate does not support [%s] in an API key query; query the keys and count "
			                      "them on the client", k);
		} else {
			return kg_es_fail_set(ps->f, 400, "x_content_parse_exception",
			                      "[query_api_key_request_payload] unknown field [%s]", k);
		}
	}
	/* QueryApiKeyRequest.validate(): both problems, numbered */
	if (q->from < 0)
		kg_es_fail_validation_add(ps->f, "[from] parameter cannot be negative but was [%" PRId64 "]", q->from);
	if (q->size < 0)
		kg_es_fail_validation_add(ps->f, "[size] parameter cannot be negative but was [%" PRId64 "]", q->size);
	if (q->from < 0 || q->size < 0)
		return KG_EINVAL;
	if (q->from + q->size > KG_ES_QUERY_MAX_WINDOW)
		return kg_es_fail_set(ps->f, 400, "illegal_argument_exception",
		                      "Result window is too large, from + size must be less than or equal to: [%d] but was "
		                      "[%" PRId64 "]. See the scroll api for a more efficient way to request large data "
		                      "sets. This limit can be set by changing the [index.max_result_window] index level "
		                      "setting.",
		                      KG_ES_QUERY_MAX_WINDOW, q->from + q->size);
	if (after) {
		size_t n = json_array_size(after);
		if (!q->is_sorted)
			return fail_arg(ps->f, "Sort must contain at least one field.");
		if (n != q->nsort)
			return kg_es_fail_set(ps->f, 400, "illegal_argument_exception",
			                      "search_after has %zu value(s) but sort has %zu.", n, q->nsort);
		if (has_from && q->from != 0)
			return fail_arg(ps->f, "`from` parameter must be set to 0 when `search_after` is used.");
		for (size_t i = 0; i < n; i++) {
			const json_t *e = json_array_get(after, i);
			struct fref doc_f = { &fields[FIELD_CREATION], NULL, 0 }; /* _doc: a position, an integer */
			const struct fref *fr = q->sort[i].is_doc ? &doc_f : &q->sort[i].f;
			if (json_is_null(e)) {
				q->after[i].is_date_expr = false;
				q->after[i].i = 0;
				q->after[i].n = 0;
				q->after[i].s = NULL;
				q->after[i].buf[0] = '\0';
				q->after[i].d.precision = -1; /* missing: sorts last */
				continue;
			}
			if ((err = make_val(e, fr, &q->after[i], "search_after", ps->f)))
				return err;
			if (q->after[i].is_date_expr)
				q->after[i].i = date_resolve(&q->after[i].d, 0, false);
		}
		q->nafter = n;
	}
	return KG_OK;
}

kg_err kg_es_query_parse(kg_str body, kg_es_query **out, struct kg_es_fail *f)
{
	json_error_t jerr;
	kg_err err;
	kg_es_query *q = calloc(1, sizeof(*q));
	*out = NULL;
	if (!q)
		return KG_ENOMEM;
	q->size = 10;
	struct parser ps = { q, f };
	kg_str trimmed = body;
	while (trimmed.n && isspace((unsigned char)trimmed.p[0]))
		trimmed.p++, trimmed.n--;
	if (trimmed.n > 0) {
		q->body = json_loadb(trimmed.p, trimmed.n, JSON_REJECT_DUPLICATES, &jerr);
		if (!q->body) {
			err = kg_es_fail_set(f, 400, "x_content_parse_exception",
			                     "[%d:%d] [query_api_key_request_payload] failed to parse: %s", jerr.line, jerr.column,
			                     jerr.text);
			goto out;
		}
		if ((err = parse_body(&ps, q->body)))
			goto out;
	}
	if (!q->is_sorted) {
		/* ES's order without a sort is its index order; keygate's is creation, then id */
		q->sort[0] = (struct sort_key){ .f = { &fields[FIELD_CREATION], NULL, 0 } };
		q->sort[1] = (struct sort_key){ .f = { &fields[FIELD_ID], NULL, 0 } };
		q->nsort = 2;
	}
	*out = q;
	return KG_OK;
out:
	kg_es_query_free(&q);
	return err;
}

/* ---- running ---- */

struct skey {
	bool is_missing;
	bool is_text;
	int64_t i;
	const char *s; /* borrowed from the document, or buf */
	size_t n;
	char buf[40];  /* a flattened number's text; keys never move once computed */
};

struct run {
	const kg_es_query *q;
	struct skey *keys; /* nsort per matched document */
	size_t *order;     /* document indexes */
};

struct sort_probe {
	struct skey *k;
	bool is_desc;
	bool is_text;
};

static bool on_sort_value(const struct node *q, const struct val *v, int64_t now)
{
	struct sort_probe *p = q->probe;
	int r = 0;
	if (!p->k->is_missing)
		r = p->is_text ? cmp_text(val_s(v), v->n, p->k->s, p->k->n) : (v->i < p->k->i ? -1 : v->i > p->k->i);
	/* ES's default sort mode: the least value for asc, the greatest for desc */
	if (p->k->is_missing || (r < 0 && !p->is_desc) || (r > 0 && p->is_desc)) {
		p->k->is_missing = false;
		p->k->is_text = p->is_text;
		p->k->i = v->i;
		p->k->n = v->n;
		if (v->s) {
			p->k->s = v->s;
		} else {
			memcpy(p->k->buf, v->buf, sizeof(p->k->buf));
			p->k->s = p->k->buf;
		}
	}
	return false;
}

static void sort_key_of(const struct sort_key *sk, const json_t *doc, size_t idx, struct skey *out)
{
	memset(out, 0, sizeof(*out));
	out->is_missing = true;
	if (sk->is_doc) {
		out->is_missing = false;
		out->i = (int64_t)idx;
		return;
	}
	struct sort_probe p = { out, sk->is_desc, is_text_kind(sk->f.def->kind) };
	struct node probe;
	memset(&probe, 0, sizeof(probe));
	probe.f = sk->f;
	probe.probe = &p;
	any_value(doc, &sk->f, &probe, on_sort_value, 0);
	out->is_text = p.is_text;
}

/* Missing values sort last either way, as ES's default "missing": "_last". */
static int cmp_skey(const struct skey *a, const struct skey *b, bool is_desc)
{
	if (a->is_missing || b->is_missing)
		return a->is_missing == b->is_missing ? 0 : (a->is_missing ? 1 : -1);
	int r = a->is_text ? cmp_text(a->s, a->n, b->s, b->n) : (a->i < b->i ? -1 : a->i > b->i);
	return is_desc ? -r : r;
}

static int cmp_docs(const void *x, const void *y, void *ctx)
{
	const struct run *r = ctx;
	size_t a = *(const size_t *)x, b = *(const size_t *)y, n = r->q->nsort;
	for (size_t i = 0; i < n; i++) {
		int c = cmp_skey(&r->keys[a * n + i], &r->keys[b * n + i], r->q->sort[i].is_desc);
		if (c)
			return c;
	}
	return a < b ? -1 : a > b; /* stable: the documents' order */
}

/* True when the document sorts strictly after search_after. */
static bool is_after(const kg_es_query *q, const struct skey *keys)
{
	for (size_t i = 0; i < q->nafter; i++) {
		const struct val *a = &q->after[i];
		struct skey ak = { .is_missing = a->d.precision == -1,
			           .is_text = !q->sort[i].is_doc && is_text_kind(q->sort[i].f.def->kind),
			           .i = a->i, .s = val_s(a), .n = a->n };
		int c = cmp_skey(&keys[i], &ak, q->sort[i].is_desc);
		if (c)
			return c > 0;
	}
	return false;
}

static json_t *sort_values(const kg_es_query *q, const struct skey *keys)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < q->nsort; i++) {
		const struct skey *k = &keys[i];
		json_t *v;
		if (k->is_missing)
			v = k->is_text ? json_null() : json_integer(q->sort[i].is_desc ? INT64_MIN : INT64_MAX);
		else if (k->is_text)
			v = json_stringn(k->s, k->n);
		else
			v = json_integer(k->i); /* dates as epoch ms, booleans as 1 or 0, as ES's raw sort values */
		if (json_array_append_new(arr, v) != 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

kg_err kg_es_query_run(const kg_es_query *q, json_t *const *docs, size_t ndocs, int64_t now_ms,
                       kg_es_query_view_fn view, void *view_data, json_t **result, struct kg_es_fail *f)
{
	kg_err err = KG_ENOMEM;
	struct run r = { q, NULL, NULL };
	json_t *res = NULL, *list = NULL;
	size_t nmatch = 0, nsort = q->nsort;
	*result = NULL;
	r.order = malloc((ndocs ? ndocs : 1) * sizeof(*r.order));
	if (!r.order)
		goto out;
	for (size_t i = 0; i < ndocs; i++)
		if (!q->root || doc_matches(q->root, docs[i], now_ms))
			r.order[nmatch++] = i;
	/* keys indexed by document; only the matched ones are computed */
	r.keys = calloc((ndocs ? ndocs : 1) * nsort, sizeof(*r.keys));
	if (!r.keys)
		goto out;
	for (size_t m = 0; m < nmatch; m++) {
		size_t i = r.order[m];
		for (size_t k = 0; k < nsort; k++)
			sort_key_of(&q->sort[k], docs[i], i, &r.keys[i * nsort + k]);
	}
	qsort_r(r.order, nmatch, sizeof(*r.order), cmp_docs, &r);

	list = json_array();
	if (!list)
		goto out;
	size_t skipped = 0;
	for (size_t m = 0; m < nmatch && (int64_t)json_array_size(list) < q->size; m++) {
		size_t i = r.order[m];
		if (q->nafter && !is_after(q, &r.keys[i * nsort]))
			continue;
		if ((int64_t)skipped++ < q->from)
			continue;
		json_t *item = view(docs[i], view_data);
		if (!item)
			goto out;
		if (q->is_sorted) {
			json_t *sv = sort_values(q, &r.keys[i * nsort]);
			if (!sv || json_object_set_new(item, "_sort", sv) != 0) {
				json_decref(item);
				goto out;
			}
		}
		if (json_array_append_new(list, item) != 0)
			goto out;
	}
	res = json_pack("{s:I,s:I,s:O}", "total", (json_int_t)nmatch, "count", (json_int_t)json_array_size(list),
	                "api_keys", list);
	if (!res)
		goto out;
	*result = res;
	err = KG_OK;
out:
	json_decref(list);
	free(r.keys);
	free(r.order);
	(void)f;
	return err;
}

/* ---- freeing ---- */

void kg_es_query_free(kg_es_query **qp)
{
	kg_es_query *q = qp ? *qp : NULL;
	if (!q)
		return;
	for (struct node *n = q->allocs, *next; n; n = next) {
		next = n->next_alloc;
		free(n->f.path);
		free(n->vals);
		free(n->must);
		free(n->filter);
		free(n->should);
		free(n->must_not);
		for (size_t i = 0; i < n->nsqs_fields; i++)
			free(n->sqs_fields[i].path);
		free(n->sqs_fields);
		free(n->sqs_terms);
		free(n);
	}
	for (size_t i = 0; i < q->nsort; i++)
		free(q->sort[i].f.path);
	json_decref(q->body);
	free(q);
	*qp = NULL;
}
