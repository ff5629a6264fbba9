/* The embedded developer's machine's example: one program, built for this machine and
 * for a 32-bit ARM board (see the Makefile). It says which processor it was built for. */
#include <stdio.h>
#include <sys/utsname.h>

#if defined(__arm__)
#define BUILT_FOR "32-bit ARM (arm-linux-gnueabihf)"
#elif defined(__x86_64__)
#define BUILT_FOR "x86-64"
#elif defined(__i386__)
#define BUILT_FOR "32-bit x86"
#else
#define BUILT_FOR "another processor"
#endif

int main(void)
{
	struct utsname u;

	if (uname(&u) != 0) {
		perror("uname");
		return 1;
	}
	printf("Hello from a program built for %s, running on %s (%s)\n", BUILT_FOR, u.machine,
	       u.nodename);
	return 0;
}
