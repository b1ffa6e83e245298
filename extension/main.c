/* extension/main.c: placeholder entry point until the local API lands. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        puts("stash 0.1.0");
        return 0;
    }
    fputs("stash: not implemented yet\n", stderr);
    return 1;
}
