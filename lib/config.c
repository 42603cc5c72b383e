/* KEY="value" configuration files, as OpenVZ's vz.conf and VEID.conf. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "util.h"

static int push_line(struct vz_conf *conf, char *key, char *value, struct vz_err *err)
{
	if (conf->n == conf->cap) {
		size_t cap = conf->cap ? conf->cap * 2 : 16;
		struct vz_conf_line *l = realloc(conf->lines, cap * sizeof(*l));

		if (!l) {
			free(key);
			free(value);
			return vz_error_msg(err, ENOMEM, "Out of memory");
		}
		conf->lines = l;
		conf->cap = cap;
	}
	conf->lines[conf->n].key = key;
	conf->lines[conf->n].value = value;
	conf->n++;
	return 0;
}

static int valid_key_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* Parse one non-comment line "KEY=value" / KEY="value" / KEY='value'. */
static int parse_assignment(const char *s, size_t len, char **key, char **value)
{
	size_t i = 0, klen, vstart, vend;
	char quote = 0;

	while (i < len && valid_key_char(s[i]))
		i++;
	klen = i;
	if (klen == 0 || i >= len || s[i] != '=' || isdigit((unsigned char)s[0]))
		return -EINVAL;
	i++;
	if (i < len && (s[i] == '"' || s[i] == '\'')) {
		quote = s[i++];
		vstart = i;
		while (i < len && s[i] != quote)
			i++;
		if (i >= len)
			return -EINVAL;
		vend = i++;
	} else {
		vstart = i;
		while (i < len && !isspace((unsigned char)s[i]) && s[i] != '#')
			i++;
		vend = i;
	}
	/* Only blanks or a comment may follow. */
	while (i < len && isspace((unsigned char)s[i]))
		i++;
	if (i < len && s[i] != '#')
		return -EINVAL;
	*key = strndup(s, klen);
	*value = strndup(s + vstart, vend - vstart);
	if (!*key || !*value) {
		free(*key);
		free(*value);
		return -ENOMEM;
	}
	return 0;
}

int vz_conf_parse(struct vz_conf *conf, const char *text, size_t len, struct vz_err *err)
{
	size_t pos = 0;
	unsigned lineno = 0;

	while (pos < len) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
		size_t llen = nl ? (size_t)(nl - line) : len - pos, skip = 0;
		char *key = NULL, *value = NULL;
		int ret;

		pos += llen + (nl ? 1 : 0);
		lineno++;
		if (memchr(line, '\0', llen))
			return vz_error_msg(err, EINVAL, "Line %u: NUL byte", lineno);
		while (skip < llen && isspace((unsigned char)line[skip]))
			skip++;
		if (skip == llen || line[skip] == '#') {
			char *raw = strndup(line, llen);

			if (!raw)
				return vz_error_msg(err, ENOMEM, "Out of memory");
			ret = push_line(conf, NULL, raw, err);
			if (ret < 0)
				return ret;
			continue;
		}
		ret = parse_assignment(line + skip, llen - skip, &key, &value);
		if (ret == -ENOMEM)
			return vz_error_msg(err, ENOMEM, "Out of memory");
		if (ret < 0)
			return vz_error_msg(err, EINVAL, "Line %u: expected KEY=\"value\"", lineno);
		ret = push_line(conf, key, value, err);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int vz_conf_load(struct vz_conf *conf, const char *path, struct vz_err *err)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int ret;

	ret = vz_read_file(path, &text, &len, 1 << 20);
	if (ret < 0)
		return vz_error(err, -ret, "Read %s", path);
	ret = vz_conf_parse(conf, text, len, err);
	if (ret < 0)
		return vz_error_wrap(err, "%s", path);
	return 0;
}

const char *vz_conf_get(const struct vz_conf *conf, const char *key)
{
	/* The last assignment wins, as in a shell. */
	for (size_t i = conf->n; i-- > 0;)
		if (conf->lines[i].key && strcmp(conf->lines[i].key, key) == 0)
			return conf->lines[i].value;
	return NULL;
}

int vz_conf_set(struct vz_conf *conf, const char *key, const char *value, struct vz_err *err)
{
	int found = 0;

	if (strchr(value ? value : "", '"') || strchr(value ? value : "", '\n'))
		return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "Value of %s must not hold quotes or newlines",
					 key);
	for (size_t i = 0; i < conf->n; i++) {
		struct vz_conf_line *l = &conf->lines[i];

		if (!l->key || strcmp(l->key, key) != 0)
			continue;
		if (!value || found) {
			free(l->key);
			free(l->value);
			memmove(l, l + 1, (conf->n - i - 1) * sizeof(*l));
			conf->n--;
			i--;
			continue;
		}
		char *v = strdup(value);

		if (!v)
			return vz_error_msg(err, ENOMEM, "Out of memory");
		free(l->value);
		l->value = v;
		found = 1;
	}
	if (found || !value)
		return 0;

	char *k = strdup(key), *v = strdup(value);

	if (!k || !v) {
		free(k);
		free(v);
		return vz_error_msg(err, ENOMEM, "Out of memory");
	}
	return push_line(conf, k, v, err);
}

int vz_conf_save(const struct vz_conf *conf, const char *path, struct vz_err *err)
{
	char tmp[4096];
	_cleanup_fclose_ FILE *f = NULL;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return vz_error(err, errno, "Create %s", tmp);
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(tmp);
		return vz_error_msg(err, errno, "Open %s", tmp);
	}
	for (size_t i = 0; i < conf->n; i++) {
		const struct vz_conf_line *l = &conf->lines[i];

		if (l->key)
			fprintf(f, "%s=\"%s\"\n", l->key, l->value);
		else
			fprintf(f, "%s\n", l->value);
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		int e = errno;

		unlink(tmp);
		return vz_error(err, e, "Write %s", tmp);
	}
	if (rename(tmp, path) != 0) {
		int e = errno;

		unlink(tmp);
		return vz_error(err, e, "Rename %s to %s", tmp, path);
	}
	return 0;
}

int vz_conf_copy(struct vz_conf *dst, const struct vz_conf *src, struct vz_err *err)
{
	for (size_t i = 0; i < src->n; i++) {
		const struct vz_conf_line *l = &src->lines[i];
		char *k = l->key ? strdup(l->key) : NULL, *v = strdup(l->value);
		int ret;

		if ((l->key && !k) || !v) {
			free(k);
			free(v);
			return vz_error_msg(err, ENOMEM, "Out of memory");
		}
		ret = push_line(dst, k, v, err);
		if (ret < 0)
			return ret;
	}
	return 0;
}

void vz_conf_free(struct vz_conf *conf)
{
	if (!conf)
		return;
	for (size_t i = 0; i < conf->n; i++) {
		free(conf->lines[i].key);
		free(conf->lines[i].value);
	}
	free(conf->lines);
	conf->lines = NULL;
	conf->n = conf->cap = 0;
}
