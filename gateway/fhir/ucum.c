/*
 * ucum: the common UCUM units as tables of atoms and prefixes, and a
 * recursive-descent parser of the UCUM term grammar restricted to what
 * the tables can convert (see ucum.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ucum.h"

struct ucum_atom {
	const char *code;
	double factor; /* in m, g, s, mol, K */
	int dim[UCUM_NDIM];
	bool metric; /* takes a prefix */
};

/* Factors from the UCUM tables (essence.xml): a litre is 1 dm3, a mean
 * Julian month 30.4375 d, a Julian year 365.25 d, the international inch
 * 2.54 cm, the avoirdupois pound 7000 grains of 64.79891 mg. */
static const struct ucum_atom atoms[] = {
    {"m", 1, {1, 0, 0, 0, 0}, true},
    {"g", 1, {0, 1, 0, 0, 0}, true},
    {"s", 1, {0, 0, 1, 0, 0}, true},
    {"mol", 1, {0, 0, 0, 1, 0}, true},
    {"K", 1, {0, 0, 0, 0, 1}, true},
    {"l", 1e-3, {3, 0, 0, 0, 0}, true},
    {"L", 1e-3, {3, 0, 0, 0, 0}, true},
    {"min", 60, {0, 0, 1, 0, 0}, false},
    {"h", 3600, {0, 0, 1, 0, 0}, false},
    {"d", 86400, {0, 0, 1, 0, 0}, false},
    {"wk", 604800, {0, 0, 1, 0, 0}, false},
    {"mo", 2629800, {0, 0, 1, 0, 0}, false},
    {"a", 31557600, {0, 0, 1, 0, 0}, false},
    {"t", 1e6, {0, 1, 0, 0, 0}, true},
    {"[lb_av]", 453.59237, {0, 1, 0, 0, 0}, false},
    {"[oz_av]", 28.349523125, {0, 1, 0, 0, 0}, false},
    {"[gr]", 0.06479891, {0, 1, 0, 0, 0}, false},
    {"[in_i]", 0.0254, {1, 0, 0, 0, 0}, false},
    {"[ft_i]", 0.3048, {1, 0, 0, 0, 0}, false},
    {"[yd_i]", 0.9144, {1, 0, 0, 0, 0}, false},
    {"[mi_i]", 1609.344, {1, 0, 0, 0, 0}, false},
    {"%", 0.01, {0, 0, 0, 0, 0}, false},
};

static const struct {
	const char *code;
	double factor;
} prefixes[] = {
    {"Y", 1e24},  {"Z", 1e21},	{"E", 1e18},  {"P", 1e15},  {"T", 1e12},
    {"G", 1e9},	  {"M", 1e6},	{"k", 1e3},   {"h", 1e2},   {"da", 1e1},
    {"d", 1e-1},  {"c", 1e-2},	{"m", 1e-3},  {"u", 1e-6},  {"n", 1e-9},
    {"p", 1e-12}, {"f", 1e-15}, {"a", 1e-18}, {"z", 1e-21}, {"y", 1e-24},
};

static void
unit_one(struct ucum_unit *u)
{
	memset(u, 0, sizeof(*u));
	u->factor = 1;
}

/* An atom code of n bytes, exactly. */
static const struct ucum_atom *
find_atom(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof(atoms) / sizeof(atoms[0]); i++)
		if (strlen(atoms[i].code) == n &&
		    memcmp(atoms[i].code, s, n) == 0)
			return &atoms[i];
	return NULL;
}

/* A simple unit of n bytes: an atom, or a prefix and a metric atom (the
 * whole code as an atom first: "min", "mol", "cd"... are not m + x). */
static bool
simple_unit(const char *s, size_t n, struct ucum_unit *u)
{
	const struct ucum_atom *a = find_atom(s, n);

	unit_one(u);
	if (a != NULL) {
		u->factor = a->factor;
		memcpy(u->dim, a->dim, sizeof(u->dim));
		return true;
	}
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t pl = strlen(prefixes[i].code);

		if (pl < n && memcmp(prefixes[i].code, s, pl) == 0 &&
		    (a = find_atom(s + pl, n - pl)) != NULL && a->metric) {
			u->factor = prefixes[i].factor * a->factor;
			memcpy(u->dim, a->dim, sizeof(u->dim));
			return true;
		}
	}
	return false;
}

struct pstate {
	const char *s;
	size_t n, i;
};

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* An optional signed one-digit exponent after an atom: "2", "-1", "+3".
 * (UCUM allows more digits; powers beyond 9 are no real unit.) */
static bool
exponent(struct pstate *p, int *e)
{
	int sign = 1;
	size_t st = p->i;

	*e = 1;
	if (p->i < p->n && (p->s[p->i] == '-' || p->s[p->i] == '+')) {
		sign = p->s[p->i] == '-' ? -1 : 1;
		p->i++;
	}
	if (p->i < p->n && is_digit(p->s[p->i])) {
		*e = sign * (p->s[p->i] - '0');
		p->i++;
		return p->i >= p->n || !is_digit(p->s[p->i]);
	}
	return p->i == st; /* a sign without digits is an error */
}

static void
unit_pow_mul(struct ucum_unit *acc, const struct ucum_unit *u, int e)
{
	acc->factor *= pow(u->factor, e);
	for (int k = 0; k < UCUM_NDIM; k++)
		acc->dim[k] += u->dim[k] * e;
}

/* component := annotation | ( "10*" | "10^" ) digits | factor | simple
 * exponent? ; annotation := "{" ... "}" (value 1) */
static bool
component(struct pstate *p, struct ucum_unit *u)
{
	size_t st = p->i;
	int e;

	unit_one(u);
	if (p->i < p->n && p->s[p->i] == '{') {
		while (p->i < p->n && p->s[p->i] != '}') {
			if (p->s[p->i] < ' ' || p->s[p->i] > '~')
				return false;
			p->i++;
		}
		if (p->i >= p->n)
			return false;
		p->i++;
		return true;
	}
	if (p->n - p->i >= 3 && memcmp(p->s + p->i, "10", 2) == 0 &&
	    (p->s[p->i + 2] == '*' || p->s[p->i + 2] == '^')) {
		int sign = 1, pw = 0, nd = 0;

		p->i += 3;
		if (p->i < p->n && (p->s[p->i] == '-' || p->s[p->i] == '+'))
			sign = p->s[p->i++] == '-' ? -1 : 1;
		while (p->i < p->n && is_digit(p->s[p->i]) && nd < 3) {
			pw = pw * 10 + (p->s[p->i++] - '0');
			nd++;
		}
		if (nd == 0 || pw > 99 || (p->i < p->n && is_digit(p->s[p->i])))
			return false;
		u->factor = pow(10, sign * pw);
		return true;
	}
	if (p->i < p->n && is_digit(p->s[p->i])) {
		/* a plain factor: "1", "100" */
		double f = 0;
		int nd = 0;

		while (p->i < p->n && is_digit(p->s[p->i]) && nd < 9) {
			f = f * 10 + (p->s[p->i++] - '0');
			nd++;
		}
		if (p->i < p->n && is_digit(p->s[p->i]))
			return false;
		u->factor = f;
		return f != 0;
	}
	if (p->i < p->n && p->s[p->i] == '[') {
		while (p->i < p->n && p->s[p->i] != ']')
			p->i++;
		if (p->i >= p->n)
			return false;
		p->i++;
	} else {
		while (p->i < p->n && p->s[p->i] != '.' && p->s[p->i] != '/' &&
		       p->s[p->i] != '{' && p->s[p->i] != '[' &&
		       p->s[p->i] != '+' && p->s[p->i] != '-' &&
		       !is_digit(p->s[p->i]))
			p->i++;
	}
	{
		struct ucum_unit su;
		size_t end = p->i;

		/* "m[lb_av]"-like mixtures and empty names are refused */
		if (end == st || !simple_unit(p->s + st, end - st, &su))
			return false;
		if (!exponent(p, &e))
			return false;
		unit_pow_mul(u, &su, e);
		/* an annotation right after the unit: "mg{total}" */
		if (p->i < p->n && p->s[p->i] == '{') {
			struct ucum_unit ann;

			return component(p, &ann);
		}
	}
	return true;
}

/* term := "/" component (op component)* | component (op component)* */
static bool
term(struct pstate *p, struct ucum_unit *u)
{
	struct ucum_unit c;
	int sign = 1;

	unit_one(u);
	if (p->i < p->n && p->s[p->i] == '/') {
		sign = -1;
		p->i++;
	}
	for (;;) {
		if (!component(p, &c))
			return false;
		unit_pow_mul(u, &c, sign);
		if (p->i >= p->n)
			return true;
		if (p->s[p->i] == '.')
			sign = 1;
		else if (p->s[p->i] == '/')
			sign = -1;
		else
			return false;
		p->i++;
	}
}

enum gw_err
ucum_parse(const char *s, size_t len, struct ucum_unit *u)
{
	struct pstate p = {s, len, 0};

	if (len > UCUM_MAX_LEN)
		return GW_TOOBIG;
	unit_one(u);
	if (len == 0)
		return GW_PARSE;
	/* the temperature scales with an offset stand alone */
	if (len == 3 && memcmp(s, "Cel", 3) == 0) {
		u->offset = 273.15;
		u->dim[UCUM_K] = 1;
		return GW_OK;
	}
	if (len == 6 && memcmp(s, "[degF]", 6) == 0) {
		u->factor = 5.0 / 9.0;
		u->offset = 459.67 * 5.0 / 9.0;
		u->dim[UCUM_K] = 1;
		return GW_OK;
	}
	if (len == 1 && s[0] == '1')
		return GW_OK;
	if (!term(&p, u) || p.i != len || !isfinite(u->factor) ||
	    u->factor == 0)
		return GW_PARSE;
	for (int k = 0; k < UCUM_NDIM; k++)
		if (u->dim[k] > 9 || u->dim[k] < -9)
			return GW_PARSE;
	return GW_OK;
}

bool
ucum_commensurable(const struct ucum_unit *a, const struct ucum_unit *b)
{
	return memcmp(a->dim, b->dim, sizeof(a->dim)) == 0;
}

enum gw_err
ucum_convert(double v, const char *from, const char *to, double *out)
{
	struct ucum_unit a, b;
	enum gw_err err;

	if ((err = ucum_parse(from, strlen(from), &a)) != GW_OK ||
	    (err = ucum_parse(to, strlen(to), &b)) != GW_OK)
		return err == GW_TOOBIG ? GW_PARSE : err;
	if (!ucum_commensurable(&a, &b))
		return GW_INVALID;
	*out = (v * a.factor + a.offset - b.offset) / b.factor;
	return GW_OK;
}
