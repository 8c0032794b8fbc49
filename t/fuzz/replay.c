/* replay.c: runs a libFuzzer harness without libFuzzer, over the files
** named on the command line (directories: every file in them), so that
** `make test` and `make asan` replay the committed corpora and the
** regression inputs with any compiler. Prints one TAP line per file; an
** input that takes longer than REPLAY_SECONDS ends the run (SIGALRM). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#define REPLAY_SECONDS 60

static int count;


static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0, n;
  if (f == NULL) {
    printf("not ok %d - %s: cannot open\n", ++count, path);
    return 1;
  }
  do {
    if (len == cap) {
      uint8_t *nb = realloc(buf, cap = cap ? cap * 2 : 4096);
      if (nb == NULL)
        abort();
      buf = nb;
    }
    n = fread(buf + len, 1, cap - len, f);
    len += n;
  } while (n > 0);
  fclose(f);
  alarm(REPLAY_SECONDS);
  LLVMFuzzerTestOneInput(buf, len);  /* aborts on a failed check */
  free(buf);
  printf("ok %d - %s\n", ++count, path);
  fflush(stdout);
  return 0;
}


static int names_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}


/* replay_dir replays a directory's files in name order (skipping dot
** files). */
static int replay_dir(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char **names = NULL;
  size_t n = 0, i;
  int bad = 0;
  if (d == NULL)
    return 0;  /* a harness may have no regressions yet */
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    names = realloc(names, (n + 1) * sizeof *names);
    if (names == NULL)
      abort();
    names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2);
    if (names[n] == NULL)
      abort();
    sprintf(names[n++], "%s/%s", dir, e->d_name);
  }
  closedir(d);
  if (n > 0)
    qsort(names, n, sizeof *names, names_cmp);
  for (i = 0; i < n; i++) {
    bad |= replay_file(names[i]);
    free(names[i]);
  }
  free(names);
  return bad;
}


int main(int argc, char **argv) {
  int i, bad = 0;
  for (i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
      bad |= replay_dir(argv[i]);
    else
      bad |= replay_file(argv[i]);
  }
  printf("1..%d\n", count);
  return bad;
}
